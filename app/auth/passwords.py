"""The password policy for new and changed passwords: at least 10 characters, not one of the
most common passwords, not a short pattern repeated, and not the username (case ignored)."""

from app.auth.common_passwords import COMMON_PASSWORDS

MIN_LENGTH = 10
MAX_LENGTH = 128


def _short_pattern_repeated(folded: str) -> bool:
    """`aaaaaaaaaa`, `1212121212`, `abcabcabcabc`."""
    return any(folded == (folded[:n] * len(folded))[: len(folded)] for n in (1, 2, 3))


def password_problem(password: str, username: str | None = None) -> str | None:
    """What is wrong with `password` as a new password of `username`, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    folded = password.strip().casefold()
    if folded in COMMON_PASSWORDS or _short_pattern_repeated(folded):
        return "this password is one of the most common passwords: choose another"
    if username and folded == username.strip().casefold():
        return "the password must not be the username"
    return None
