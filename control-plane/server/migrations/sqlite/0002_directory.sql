-- Directory sources: each holds a whole directory document (users, groups, on-call schedules),
-- replaced as a whole. The static source is `static`; identity-provider syncs add their own.
CREATE TABLE directory_sources (
    source      TEXT NOT NULL PRIMARY KEY,
    spec        TEXT NOT NULL, -- canonical JSON of latch_core::directory::DirectorySpec
    digest      TEXT NOT NULL, -- SHA-256 of `spec`, hex
    applied_at  TEXT NOT NULL,
    applied_by  TEXT NOT NULL
) STRICT;
