/** Errors of the spool (docs/storage.md, "Spool"). */

/** The spool directory holds a segment in a format this hub does not know (written by a newer hub). */
export class SpoolFormatError extends Error {
  override readonly name = 'SpoolFormatError';
}

/** accept() refused: the spool is full (store down). Not acked; the device keeps the readings. */
export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';
  readonly code = 'STORE_BUSY';
}

/**
 * accept() refused because an earlier append or fdatasync failed (fail-stop). Not acked; the device keeps the
 * readings and resends them to the restarted hub.
 */
export class SpoolFailedError extends Error {
  override readonly name = 'SpoolFailedError';
}

export class SpoolClosedError extends Error {
  override readonly name = 'SpoolClosedError';
}

/**
 * The spool directory is open to other local users (group or other permission bits) and cannot be restricted to
 * the hub's user: the spool holds every reading, so the hub refuses to start.
 */
export class SpoolPermissionError extends Error {
  override readonly name = 'SpoolPermissionError';
}

/** Another live process holds the spool directory. */
export class SpoolLockedError extends Error {
  override readonly name = 'SpoolLockedError';
}
