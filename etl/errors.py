"""Errors meant for the user: the CLI prints them as one line and exits non-zero."""


class EtlError(Exception):
    """Something the user can fix; the message says what and where."""

    exit_code = 1


class WarehouseLocked(EtlError):
    exit_code = 3


class VersionExists(EtlError):
    exit_code = 4


class VerificationFailed(EtlError):
    exit_code = 5
