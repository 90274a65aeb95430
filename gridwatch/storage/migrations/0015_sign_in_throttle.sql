-- 0015_sign_in_throttle: failed sign-ins counted per client address as well as per account.
-- Password spraying tries a few guesses on each of many accounts from one address, staying under every account's
-- lock; counting the attempts of an address, whatever user names it tries, pauses it. An attempt is counted before
-- its password is checked (a success takes its count back), so attempts made at once cannot get past the limit.
-- Times are UTC, stored without a time zone (as everywhere in gridwatch).
CREATE TABLE sign_in_throttle (
    client       TEXT PRIMARY KEY,             -- the address the app saw the attempt come from
    failures     INTEGER NOT NULL,             -- attempts counted since window_start
    window_start TIMESTAMP NOT NULL,           -- the count starts again once the window has passed
    locked_until TIMESTAMP                     -- attempts from the address refused until then
)
