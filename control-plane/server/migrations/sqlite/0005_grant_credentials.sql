-- Credentials a connector made for one grant (a temporary database user), sealed with the server's
-- credentials key (ChaCha20-Poly1305, bound to the grant id): a dump of this table reveals no
-- password. Shown to the requester only; deleted when the grant's revoke completes.
CREATE TABLE grant_credentials (
    grant_id   TEXT NOT NULL PRIMARY KEY REFERENCES grants (id),
    nonce      BLOB NOT NULL,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
