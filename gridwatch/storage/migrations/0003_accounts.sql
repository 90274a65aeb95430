-- 0003_accounts: sign-in accounts of people, their sessions, and the record of refused attempts.
-- Times are UTC, stored without a time zone (as everywhere in gridwatch).

-- One account per person; the password is kept only as an argon2id hash.
CREATE SEQUENCE accounts_id_seq START 1;
CREATE TABLE accounts (
    id            BIGINT PRIMARY KEY DEFAULT nextval('accounts_id_seq'),
    username      TEXT NOT NULL UNIQUE,
    person_id     BIGINT NOT NULL REFERENCES people (id),
    password_hash TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login_at TIMESTAMP,
    failed_logins INTEGER NOT NULL DEFAULT 0,  -- consecutive failed sign-ins since the last success or lock
    locked_until  TIMESTAMP                    -- sign-in refused until then (too many failures)
);

-- Signed-in sessions: only the SHA-256 of the token is stored, never the token.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,           -- absolute end
    idle_seconds INTEGER NOT NULL,             -- the session also ends this long after last_seen_at
    revoked      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_account ON sessions (account_id);

-- Every refused attempt: failed sign-ins and actions outside a user's grants or scope.
-- No foreign key: the record is written apart from the refused work and must outlive any account.
CREATE SEQUENCE access_denials_id_seq START 1;
CREATE TABLE access_denials (
    id          BIGINT PRIMARY KEY DEFAULT nextval('access_denials_id_seq'),
    happened_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    account_id  BIGINT,                        -- NULL for a sign-in with an unknown user name
    action      TEXT NOT NULL,                 -- 'login' or a role_grants action such as 'task.work'
    target      TEXT NOT NULL DEFAULT '',      -- 'cell:<h3 id>', 'unit:<code>', the user name for a sign-in, or ''
    detail      TEXT NOT NULL DEFAULT '{}'     -- JSON: reason, username, person_id
);
