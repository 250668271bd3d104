"""therapy-claims: nightly claims pipeline for outpatient rehabilitation billing."""

__version__ = "0.1.0"
