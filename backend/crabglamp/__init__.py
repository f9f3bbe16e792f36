"""CrabGlamp Usage: records what customers spend on AI and shows it to them."""

from __future__ import annotations

__version__ = "0.1.0"
