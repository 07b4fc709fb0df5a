"""Whether the Hugging Face hub can serve downloads here (one check for data and weights)."""

from __future__ import annotations

import os
import socket

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_by_environment() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no", "off")
               for v in OFFLINE_VARIABLES)


def hub_reachable(timeout: float = 1.0) -> bool:
    """False when offline by environment or huggingface.co does not answer within ``timeout``."""
    if offline_by_environment():
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False
