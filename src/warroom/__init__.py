"""Warroom: self-hosted incident response and recovery."""

__version__ = "0.1.0"
