-- 0009_external_identities: organisation sign-in (OIDC through Streamlit's st.login) linked to local accounts.
-- An identity is the provider's issuer and subject; an administrator links it to one account. Roles stay local.
CREATE TABLE account_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    email       TEXT NOT NULL DEFAULT '',
    linked_at   TIMESTAMP NOT NULL,
    linked_by   TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
