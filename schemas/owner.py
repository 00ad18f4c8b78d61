"""Who the owner is: every identity they show up under in an export.

On the floor because connectors match authors against it and the build settles
unknown authors with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers


@dataclass(frozen=True)
class Owner:
    """Every way the owner shows up in an export."""

    names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # E.164, e.g. +15551234567
    handles: tuple[str, ...] = ()
    speaker_labels: tuple[str, ...] = ()
    # ISO 3166 country whose national phone formats you use, e.g. "US", "DE"; empty:
    # the country of your first phone number.
    region: str = ""

    @property
    def phone_region(self) -> str | None:
        """The region phone numbers without a country code are read in."""
        if self.region:
            return self.region.upper()
        for phone in self.phones:
            try:
                code = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
            except Exception:  # a malformed phone in the config is not a reason to fail
                continue
            if code and code != "ZZ":
                return code
        return None

    @property
    def identities(self) -> tuple[str, ...]:
        return (*self.names, *self.emails, *self.phones, *self.handles, *self.speaker_labels)

    def matches(self, value: str | None) -> bool:
        if not value:
            return False
        needle = value.strip().casefold()
        return any(needle == candidate.strip().casefold() for candidate in self.identities)

    @property
    def display_name(self) -> str | None:
        return self.names[0] if self.names else None
