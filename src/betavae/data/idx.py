"""The IDX file format, in which LeCun et al. published MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian ``uint32`` size per dimension, then the values in
row-major order, big-endian. See http://yann.lecun.com/exdb/mnist/ ("THE IDX FILE
FORMAT").

:func:`parse_idx` is pure (bytes in, array out) so that it can be tested on
generated data; :func:`read_decompressed` does the file I/O. Everything a damaged
or wrong file can cause becomes a :class:`BetaVAEError` that names the file, since
the fix (delete it, fetch it again) is the user's to make.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from betavae.errors import BetaVAEError

# type code -> big-endian numpy dtype, as listed in the format's description.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """The array stored in the IDX bytes ``raw``, in native byte order.

    ``source`` names the data in error messages (the file it came from). The result is
    a writable copy, so it can go straight to ``torch.from_numpy`` and does not keep
    ``raw`` alive.
    """
    if len(raw) < 4:
        raise BetaVAEError(
            f"{source} is not an IDX file: it is truncated ({len(raw)} bytes, the header alone needs 4)"
        )
    if raw[0] != 0 or raw[1] != 0:
        found_magic = bytes(raw[:2]).hex()
        raise BetaVAEError(
            f"{source} is not an IDX file: its magic number starts with {found_magic}, not 0000"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise BetaVAEError(f"{source} is not an IDX file: unknown type code 0x{code:02X} (known: {known})")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise BetaVAEError(
            f"{source} is truncated: its header declares {ndim} dimensions but the file ends "
            f"after {len(raw)} bytes"
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_size
    if found < expected:
        raise BetaVAEError(
            f"{source} is truncated: shape {shape} needs {expected} bytes of data, found {found}"
        )
    if found > expected:
        raise BetaVAEError(
            f"{source} has {found - expected} unexpected bytes after the {expected} bytes of data "
            f"its header declares (shape {shape}); the file is damaged"
        )
    values = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header_size)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_decompressed(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the file at ``path``, gunzipped if it is gzip data.

    Gzip is recognised by its magic bytes (1f 8b), not by the name, because renamed
    and half-decompressed downloads are common; an IDX file never starts with 1f 8b
    (its first two bytes are zero).
    """
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise BetaVAEError(f"cannot read {os.fspath(path)}: {error.strerror or error}") from error
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        name = os.fspath(path)
        raise BetaVAEError(
            f"{name} is a corrupt gzip file ({error}); delete it and fetch it again"
        ) from error


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in the IDX file at ``path``, gzipped or not."""
    return parse_idx(read_decompressed(path), source=os.fspath(path))
