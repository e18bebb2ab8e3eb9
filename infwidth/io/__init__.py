"""Result files: atomic writers for CSV, JSON, NPZ and PNG."""

from infwidth.io.outputs import (
    atomic_write,
    write_csv,
    write_json,
    write_npz,
    write_png,
    write_text,
)

__all__ = ["atomic_write", "write_text", "write_csv", "write_json", "write_npz", "write_png"]
