"""What reading an uploaded file may not do: reach the network, or open what the file names instead of itself.

GDAL, which reads the vector and raster files, fetches URLs and opens other datasets when a file asks it to: a
GeoJSON ``crs`` of type ``link``, a ``/vsicurl/`` (or ``/vsis3/``, ...) path, a VRT or GDALG document under any
file name, a KML ``<NetworkLink>``. :func:`network_reference` finds such a request in a file's bytes before
anything reads the file (the readers then refuse it), and :data:`GDAL_NO_NETWORK` are the GDAL settings under which
a read that slipped past still reaches nothing: the network file systems open no file (``/vsicurl/`` accepts only a
file name no path can have), HTTP requests go to a proxy address curl refuses before it connects, and the drivers
of :data:`GDAL_SKIP_DRIVERS` (those that fetch, open what a file names, or run programs) are not registered.

Examples
--------
>>> network_reference(b'{"type": "FeatureCollection", "crs": {"type": "link", "properties": {"href": "http://x"}}}')
'"crs": {"type": "link"}'
>>> network_reference(b'<kml><Document><NetworkLink><Link><href>http://x/a.kml</href></Link></NetworkLink>')
'<NetworkLink>'
>>> network_reference(b'{"crs": {"type": "name", "properties": {"name": "EPSG:4546"}}, "features": []}') is None
True
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

__all__ = ["GDAL_NO_NETWORK", "GDAL_SKIP_DRIVERS", "network_reference", "file_network_reference"]

#: GDAL configuration under which no read reaches the network
GDAL_NO_NETWORK = MappingProxyType({
    # /vsicurl/ and the file systems built on it (/vsis3/, /vsigs/, /vsiaz/, ...) open only this name, which no
    # network path can be (it does not start with /vsi)
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "network-access-disabled",
    # every HTTP request (a GeoJSON crs link, a WFS, ...) goes to a proxy of a scheme curl refuses before it
    # connects; no retry, and a short timeout should a NO_PROXY setting route a request around the proxy
    "GDAL_HTTP_PROXY": "network-access-disabled://0",
    "GDAL_HTTPS_PROXY": "network-access-disabled://0",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_NETRC": "NO",
    # pixel functions in Python, should a VRT get through
    "GDAL_VRT_ENABLE_PYTHON": "NO",
})

#: GDAL drivers never registered for reading uploads: they fetch from the network, open the datasets a file
#: names (VRT, GDALG, ...), or run other programs (GPSBabel, ADBC)
GDAL_SKIP_DRIVERS = (
    "OGR_VRT", "VRT", "GDALG", "GTI", "HTTP", "WFS", "OAPIF", "OGCAPI", "CSW", "Carto", "AmigoCloud",
    "Elasticsearch", "NGW", "EEDA", "EEDAI", "PLSCENES", "PLMOSAIC", "DAAS", "WMS", "WMTS", "WCS", "STACIT",
    "STACTA", "ADBC", "GPSBabel", "AIVector", "GML", "GMLAS", "KMLSUPEROVERLAY",
)

#: what is looked for in a file (lower case; each found is then confirmed or dismissed): a network file system, a
#: KML network link, documents that open other data (OGR VRT and WFS, GDAL VRT, WMS, WMTS, WCS, GDALG), a GeoJSON
#: ``crs`` member; few needles, since each is a pass over the file
_NEEDLES = (b"/vsi", b"networklink", b"datasource", b"vrtdataset", b"gdal", b'"crs"')
#: the documents a needle may belong to
_DOCUMENTS = {b"datasource": (b"<ogrvrtdatasource", b"<ogrwfsdatasource"), b"vrtdataset": (b"<vrtdataset",),
              b"gdal": (b"<gdal_wms", b"<gdal_wmts", b"<wcs_gdal", b"gdal_streamed_alg")}
_NETWORK_FS = re.compile(rb"/vsi(?:curl|s3|gs|az|adls|oss|swift|webhdfs|hdfs)\w*")
_LINK_ELEMENT = re.compile(rb"<\s*(?:[a-z_][\w.-]*:)?networklink\b")
#: bytes read at a time, and kept from one read to the next so that a needle split between them is found
_CHUNK = 1 << 23
_OVERLAP = 64
#: the most a ``crs`` member may take (a CRS by name or link is a few dozen bytes; WKT in a name a few KB)
_CRS_WINDOW = 1 << 16
#: occurrences of one needle looked at in one chunk (a file may name "crs" in every feature's properties)
_MAX_CHECKS = 100


def network_reference(data: bytes) -> str | None:
    """Find the first request in ``data`` to read from the network or from another dataset, as the file writes it.

    Parameters
    ----------
    data : bytes
        A file's content (or all of it GDAL would see).

    Returns
    -------
    str or None
        The construct found (``/vsicurl``, ``<NetworkLink>``, ``<OGRVRTDataSource>``, ``"crs": {"type": "link"}``,
        ...), or None when there is none.
    """
    found = _search(data, data.lower(), lambda start: data[start:start + _CRS_WINDOW])
    return found[1] if found else None


def file_network_reference(path: str | Path) -> str | None:
    """:func:`network_reference` of a file, read in chunks (memory stays flat whatever the file's size)."""
    with open(path, "rb") as handle:
        tail, offset = b"", 0
        while chunk := handle.read(_CHUNK):
            data = tail + chunk
            base = offset - len(tail)
            found = _search(data, data.lower(), lambda start, h=handle, b=base: _window(h, b + start))
            if found:
                return found[1]
            tail = data[-_OVERLAP:]
            offset += len(chunk)
    return None


def _window(handle: BinaryIO, start: int) -> bytes:
    """Read the file from ``start`` on, at most :data:`_CRS_WINDOW` bytes (the file position is kept)."""
    position = handle.tell()
    handle.seek(start)
    try:
        return handle.read(_CRS_WINDOW)
    finally:
        handle.seek(position)


def _search(data: bytes, lower: bytes, window_at) -> tuple[int, str] | None:
    """Return the first construct found in ``data`` (``lower``: it in lower case) and where; None when none."""
    hits: list[tuple[int, str]] = []
    for needle in _NEEDLES:
        start, checks = lower.find(needle), 0
        while start >= 0 and checks < _MAX_CHECKS:
            what = _confirm(needle, data, lower, start, window_at)
            if what is not None:
                hits.append((start, what))
                break
            start, checks = lower.find(needle, start + 1), checks + 1
    return min(hits) if hits else None


def _confirm(needle: bytes, data: bytes, lower: bytes, start: int, window_at) -> str | None:
    """Name what the needle found at ``start`` is, when it requests other data; None when it is harmless."""
    if needle == b"/vsi":
        match = _NETWORK_FS.match(lower, start)
        return data[match.start():match.end()].decode("ascii", "replace") if match else None
    if needle == b"networklink":
        before = lower[max(0, start - 40):start + len(needle) + 1]
        return "<NetworkLink>" if _LINK_ELEMENT.search(before) else None
    if needle == b'"crs"':
        return _crs_link(window_at(start + len(needle)))
    for document in _DOCUMENTS[needle]:
        at = start - document.index(needle)
        if at >= 0 and lower[at:at + len(document)] == document:
            found = data[at:at + len(document)].decode("ascii", "replace")
            return f'"{found}"' if found.lower() == "gdal_streamed_alg" else found + ">"
    return None


def _crs_link(after: bytes) -> str | None:
    """Return ``"crs": {"type": "link"}`` when the member after a ``"crs"`` key links to a CRS to fetch."""
    text = after.decode("utf-8", "replace").lstrip()
    if not text.startswith(":"):
        return None
    text = text[1:].lstrip()
    if not text.startswith("{"):
        return None
    try:
        crs, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        # not JSON within the window: far longer than any CRS when the file goes on (else GDAL refuses it too)
        return '"crs": {…}' if len(after) >= _CRS_WINDOW else None
    kind = str(crs.get("type", "")).lower()
    properties = crs.get("properties")
    keys = {str(k).lower() for k in properties} if isinstance(properties, dict) else set()
    if kind in ("link", "url") or keys & {"href", "url", "link"}:
        return '"crs": {"type": "%s"}' % (kind if kind in ("link", "url") else "link")
    return None
