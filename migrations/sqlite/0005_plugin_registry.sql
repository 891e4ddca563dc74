-- Rule plugin registry: uploaded plugin versions (component bytes and metadata), the active version of each
-- plugin with the previous one (rollback target), and a revision counter bumped by every change, which host
-- instances poll to notice changes cheaply. Timestamps are INTEGER milliseconds since the epoch (UTC).
CREATE TABLE plugin_versions (
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes > 0),
    component   BLOB    NOT NULL,
    wit_world   TEXT    NOT NULL,
    description TEXT    NOT NULL,
    limits      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('uploaded', 'validated', 'active', 'retired')),
    uploaded_by TEXT    NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE plugin_activations (
    name             TEXT    PRIMARY KEY,
    active_version   TEXT    NOT NULL,
    previous_version TEXT    NULL,
    activated_by     TEXT    NOT NULL,
    activated_at     INTEGER NOT NULL,
    -- An active version cannot disappear; the previous one may be deleted (the code clears it first).
    FOREIGN KEY (name, active_version) REFERENCES plugin_versions (name, version)
) STRICT;

CREATE TABLE plugin_registry_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
) STRICT;

INSERT INTO plugin_registry_revision (id, revision) VALUES (1, 0);
