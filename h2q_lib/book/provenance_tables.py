"""What produced a page: the provenance table each chapter ends with (its parameters, package
versions, the machine, its precision rule, the git revision and the library's fingerprint)."""

from __future__ import annotations

import platform

import pandas as pd

from h2q_lib.core.provenance import git_revision, library_fingerprint, package_versions
from h2q_lib.training.hardware import choose_precision, machine_description, pick_device


def provenance(parameters: dict) -> pd.DataFrame:
    """What produced a page: its parameters, packages, the machine and its precision rule."""
    rows = [("parameter: " + k, repr(v)) for k, v in parameters.items()]
    rows += list(package_versions().items())
    rows.append(("python", platform.python_version()))
    machine = machine_description()
    rows.append(("machine", f"{machine['processor']}, {machine['cpu_cores']} CPU cores, "
                            f"torch threads {machine['torch_threads']}"))
    rows.append(("CPU capability", machine["cpu_capability"]))
    rows.append(("devices available", ", ".join(machine["devices_available"])))
    device = pick_device("auto")
    choice = choose_precision(device)
    rows.append((f"precision rule on {device}", f"{choice.precision}: {choice.reason}"))
    rows.append(("git revision", git_revision()))
    rows.append(("library fingerprint", library_fingerprint()))
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")
