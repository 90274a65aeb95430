"""Hostile files through the real loading paths: refused, nothing stored, nothing fetched, memory bounded.

Each refusal is a ValidationError naming the file and the limit or the reason; the heavy cases run in a child process
whose peak memory is measured.
"""

from __future__ import annotations

import inspect
import io
import json
import socket
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pytest
import shapely
from PIL import Image

from gridwatch import auth, services
from gridwatch.errors import ValidationError

REPO = Path(__file__).resolve().parents[1]
TABLES = ("layer_versions", "layer_features", "layer_cell_flags", "photos", "tasks", "task_events", "fire_points",
          "fire_detections", "ingest_batches", "ingest_rejects")
#: the most memory a child process may reach while refusing a hostile file (imports take about 250 MB)
PEAK_MB = 1024
FIRMS_HEADER = (b"latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,"
                b"frp,daynight\n")
PLACEMARK = "<Placemark><name>p</name><Point><coordinates>112.4,34.4,0</coordinates></Point></Placemark>\n"
KML_START = '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>\n'


def _counts(store) -> dict[str, int]:
    return {t: int(store.scalar(f"SELECT count(*) FROM {t}")) for t in TABLES}


def _refused(store, call, *words: str) -> ValidationError:
    """Run ``call``: it must raise a ValidationError naming every word of ``words``, with nothing stored."""
    before = _counts(store)
    with pytest.raises(ValidationError) as caught:
        call()
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert _counts(store) == before
    return caught.value


def _load(store, path: Path, kind: str = "no_burn_zones"):
    return lambda: services.layer_load(store, services.SYSTEM, kind, path.read_bytes(), name=path.name)


_CHILD = """
import json, resource, sys
from pathlib import Path
from gridwatch.errors import GridwatchError
kind, path = sys.argv[1], Path(sys.argv[2])
out = {}
try:
    if kind == "firms":
        from layers.fire_points import read_firms
        result = read_firms(path)
        out["read"] = result.read
    else:
        from gridwatch import services
        from gridwatch.storage import open_store
        tables = ("layer_versions", "layer_features", "layer_cell_flags")
        with open_store(":memory:") as store:
            before = [store.scalar(f"SELECT count(*) FROM {t}") for t in tables]
            try:
                services.layer_load(store, services.SYSTEM, kind, path, name=path.name)
            finally:
                out["stored"] = [store.scalar(f"SELECT count(*) FROM {t}") for t in tables] != before
except GridwatchError as exc:
    out["error"], out["message"] = type(exc).__name__, str(exc)
# the peak of this process since it started (ru_maxrss would count the parent's memory at the fork as well)
status = Path("/proc/self/status")
peak = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")] if status.exists() else []
out["peak_mb"] = int(peak[0].split()[1]) / 1024 if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _in_child(kind: str, path: Path) -> dict:
    """Load ``path`` as ``kind`` (a layer kind, or ``firms``) in a child process; its outcome and peak memory."""
    done = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _refused_in_child(kind: str, path: Path, *words: str) -> dict:
    got = _in_child(kind, path)
    assert got.get("error") == "ValidationError", got
    for word in words:
        assert word in got["message"], got["message"]
    assert not got.get("stored"), got
    assert got["peak_mb"] < PEAK_MB, f"peak memory {got['peak_mb']:.0f} MB"
    return got


# -- a listener that must hear nothing -----------------------------------------------------------------------------

class _Listener:
    """A TCP socket on 127.0.0.1 in a thread, recording every connection made to it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.heard: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.heard.append(connection.recv(1024) or b"(connected)")
                except OSError:
                    self.heard.append(b"(connected)")

    def close(self) -> list[bytes]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()
        return self.heard


@pytest.fixture
def listener():
    heard = _Listener()
    yield heard
    heard.close()


def _feature_collection(**extra) -> str:
    return json.dumps({"type": "FeatureCollection", **extra, "features": [{
        "type": "Feature", "properties": {"name": "测试区", "zone_type": "high_polluting_fuel"},
        "geometry": {"type": "Polygon", "coordinates": [[[112.40, 34.40], [112.46, 34.40], [112.46, 34.45],
                                                         [112.40, 34.45], [112.40, 34.40]]]}}]}, ensure_ascii=False)


def _vrt(url: str) -> str:
    return (f'<OGRVRTDataSource><OGRVRTLayer name="zones"><SrcDataSource>/vsicurl/{url}/zones.geojson'
            "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")


def _kml_with_link(url: str) -> str:
    return (f"{KML_START}<NetworkLink><name>more</name><Link><href>{url}/more.kml</href></Link></NetworkLink>\n"
            "<Placemark><name>甲</name><Polygon><outerBoundaryIs><LinearRing><coordinates>112.40,34.40 112.46,34.40 "
            "112.46,34.45 112.40,34.40</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
            "</Document></kml>")


def _write_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


#: hostile files that ask GDAL to fetch a URL or open another dataset: name -> (builder of the file, what the
#: refusal names)
NETWORK_FILES = {
    "crs_link.geojson": (lambda d, url: (d / "crs_link.geojson").write_text(_feature_collection(
        crs={"type": "link", "properties": {"href": f"{url}/crs", "type": "proj4"}})), '"crs": {"type": "link"}'),
    "crs_url.geojson": (lambda d, url: (d / "crs_url.geojson").write_text(_feature_collection(
        crs={"type": "url", "properties": {"url": f"{url}/crs"}})), '"crs": {"type": "url"}'),
    "vrt_named.geojson": (lambda d, url: (d / "vrt_named.geojson").write_text(_vrt(url)), "<OGRVRTDataSource>"),
    "vsicurl.geojson": (lambda d, url: (d / "vsicurl.geojson").write_text(_feature_collection(
        name=f"/vsicurl/{url}/zones.geojson")), "/vsicurl"),
    "gdalg.geojson": (lambda d, url: (d / "gdalg.geojson").write_text(json.dumps({
        "type": "gdal_streamed_alg",
        "command_line": f"gdal vector pipeline ! read /vsicurl/{url}/g.geojson ! write --of stream out"})),
        '"gdal_streamed_alg"'),
    "link.kml": (lambda d, url: (d / "link.kml").write_text(_kml_with_link(url), encoding="utf-8"), "<NetworkLink>"),
    "link.kmz": (lambda d, url: _write_zip(d / "link.kmz", {"doc.kml": _kml_with_link(url)}), "<NetworkLink>"),
    "vrt_shp.zip": (lambda d, url: _write_zip(d / "vrt_shp.zip", {"zones.shp": _vrt(url), "zones.dbf": b"",
                                                                  "zones.shx": b""}), "<OGRVRTDataSource>"),
}


@pytest.mark.parametrize("name", NETWORK_FILES)
def test_a_file_asking_for_data_elsewhere_is_refused_and_nothing_is_fetched(store, tmp_path, listener, name):
    build, construct = NETWORK_FILES[name]
    build(tmp_path, listener.url)
    path = tmp_path / name
    _refused(store, _load(store, path), path.name, "refers to data elsewhere", construct)
    with pytest.raises(ValidationError, match="refers to data elsewhere"):  # the layer file reader refuses it too
        from gridwatch.layerfiles import read_layer_file

        read_layer_file(path, crs="EPSG:4326")
    assert listener.close() == []


def test_the_gdal_settings_alone_keep_the_network_out(tmp_path, listener, monkeypatch):
    """Should a file get past the checks, GDAL as gridwatch sets it up fetches nothing.

    No /vsicurl/, no VRT or GDALG, no HTTP for a crs link.
    """
    import pyogrio

    import gridwatch.ingest  # noqa: F401 - importing it sets GDAL up

    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    for name in ("crs_link.geojson", "vrt_named.geojson", "gdalg.geojson"):
        NETWORK_FILES[name][0](tmp_path, listener.url)
        try:
            pyogrio.raw.read(str(tmp_path / name))
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, IndexError):
            pass
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.raw.read(f"/vsicurl/{listener.url}/zones.geojson")
    assert listener.close() == []


# -- archives ------------------------------------------------------------------------------------------------------

def _shapefile(folder: Path) -> dict[str, bytes]:
    """Write a one-polygon Shapefile; its files' bytes by name."""
    folder.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame({"name": ["测试区"], "zone_type": ["high_polluting_fuel"]},
                     geometry=[shapely.box(112.40, 34.40, 112.46, 34.45)], crs=4326).to_file(folder / "zones.shp")
    return {p.name: p.read_bytes() for p in sorted(folder.glob("zones.*"))}


def test_a_zip_bomb_is_refused_from_its_directory_with_memory_flat(tmp_path):
    """600 MB of zeros as a Shapefile's .dbf, compressed to under a megabyte."""
    path = tmp_path / "zones_bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _shapefile(tmp_path / "shp").items():
            if not name.endswith(".dbf"):
                archive.writestr(name, data)
        with archive.open("zones.dbf", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(600):
                member.write(block)
    assert path.stat().st_size < 2 << 20
    _refused_in_child("no_burn_zones", path, "zones_bomb.zip", "600 MB", "archive_max_unpacked_mb")


def test_a_zip_of_a_hundred_thousand_files_is_refused_before_its_directory_is_read(store, tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in _shapefile(tmp_path / "shp").items():
            archive.writestr(name, data)
        for i in range(100_000):
            archive.writestr(f"f{i}.txt", b"")
    _refused(store, _load(store, path), "many.zip", "100005 files", "archive_max_entries")


def test_a_zip_whose_directory_lies_about_a_size_is_refused_while_unpacking(store, tmp_path):
    """The directory says the .dbf unpacks to 1 KB; its data inflates to 5 MB."""
    path = tmp_path / "liar.zip"
    members = _shapefile(tmp_path / "shp")
    members["zones.dbf"] += bytes(5 << 20)
    _write_zip(path, members)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("zones.dbf")
    struct.pack_into("<I", data, info.header_offset + 22, 1024)  # the local header's unpacked size
    central = data.find(b"PK\x01\x02")
    while data[central + 46:central + 46 + 9] != b"zones.dbf":
        central = data.find(b"PK\x01\x02", central + 4)
        assert central > 0
    struct.pack_into("<I", data, central + 24, 1024)  # the directory's unpacked size
    path.write_bytes(bytes(data))
    _refused(store, _load(store, path), "liar.zip", "zones.dbf", "does not match the size or checksum")


def test_a_kmz_bomb_is_refused_from_its_directory_with_memory_flat(tmp_path):
    """A KMZ of about a megabyte whose KML holds 1.3 million placemarks (120 MB): GDAL would take gigabytes."""
    path = tmp_path / "zones_bomb.kmz"
    kml = KML_START + PLACEMARK * (120 * 2**20 // len(PLACEMARK)) + "</Document></kml>\n"
    _write_zip(path, {"doc.kml": kml})
    assert path.stat().st_size < 2 << 20
    _refused_in_child("coal_sale_points", path, "zones_bomb.kmz", "120 MB", "kml_max_mb")


# -- photos --------------------------------------------------------------------------------------------------------

def _png_claiming(width: int, height: int) -> bytes:
    """Make a PNG whose header claims ``width`` × ``height`` pixels (the pixel data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def worker_task(store):
    """Give a task assigned to a worker, and the worker (a signed-in user who may work tasks)."""
    now = "2026-06-01 08:00:00"
    store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, assignee_id, created_at,"
                  " due_at, title) VALUES ('fire_check', ?, 'test', 'hostile', 1, 'assigned', 7, ?, ?, 'test')",
                  [h3.str_to_int("882a1072b5fffff"), now, "2026-06-02 08:00:00"])
    user = auth.User(account_id=1, person_id=7, username="worker", name="worker",
                     roles=(("inspector", "410329", None),), role_grants={"inspector": frozenset({"task.work"})})
    return user, int(store.scalar("SELECT max(id) FROM tasks"))


def _report(store, worker_task, photos):
    user, task_id = worker_task
    return lambda: services.work_on(store, user, task_id, "reported", finding="no_fire", photos=photos)


@pytest.mark.parametrize("width, height", [(12_000, 10_000), (8_000, 8_000)], ids=["120MP", "64MP"])
def test_a_photo_of_too_many_pixels_is_refused_from_its_header(store, worker_task, width, height):
    """120 megapixels (past twice Pillow's limit) and 64 (past it, where Pillow only warns) as a few hundred bytes."""
    photos = [("ok.jpg", _jpeg()), ("huge.png", _png_claiming(width, height))]
    _refused(store, _report(store, worker_task, photos), "huge.png", f"{width * height / 1e6:.0f} megapixels",
             "photo_max_megapixels")


def test_a_report_with_too_many_photos_is_refused(store, worker_task):
    photos = [(f"p{i}.jpg", _jpeg()) for i in range(11)]
    _refused(store, _report(store, worker_task, photos), "11 photos", "photo_max_count")


def test_a_report_whose_photos_are_too_large_in_all_is_refused(store, worker_task):
    """Nine photos of 9 MB each: each within its own limit, 81 MB together (checked before any is decoded)."""
    photos = [(f"p{i}.jpg", bytes(9 << 20)) for i in range(9)]
    _refused(store, _report(store, worker_task, photos), "81.0 MB", "photo_max_total_mb")


# -- satellite fire files ------------------------------------------------------------------------------------------

def _garbage_firms(path: Path, megabytes: int) -> Path:
    """Write a FIRMS header and then random text in thirteen comma-separated fields a line."""
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789.-:/ ", dtype=np.uint8)
    chars = alphabet[np.random.default_rng(7).integers(0, len(alphabet), megabytes << 20, dtype=np.uint8)]
    chars[7::8] = ord(",")
    chars[103::104] = ord("\n")
    path.write_bytes(FIRMS_HEADER + chars.tobytes() + b"\n")
    return path


def test_a_garbage_fire_file_is_refused_with_memory_flat(tmp_path):
    """50 MB of garbage in the right number of fields: refused after its first chunk, memory far below its size."""
    got = _refused_in_child("firms", _garbage_firms(tmp_path / "garbage.csv", 50), "garbage.csv",
                            "is not a FIRMS active-fire CSV", "cannot be used")
    assert got["peak_mb"] < 400, got


def test_binary_after_a_fire_file_header_is_refused_with_memory_flat(tmp_path):
    path = tmp_path / "binary.csv"
    body = np.random.default_rng(3).integers(1, 256, 30 << 20, dtype=np.uint8).tobytes()
    path.write_bytes(FIRMS_HEADER + body)
    _refused_in_child("firms", path, "binary.csv", "is not a FIRMS active-fire CSV")


@pytest.mark.parametrize("where", ["after_header", "first_line"])
def test_one_giant_line_is_refused(tmp_path, where):
    path = tmp_path / f"giant_{where}.csv"
    line = b"1," * (3 << 20)
    path.write_bytes(FIRMS_HEADER + line if where == "after_header" else line)
    expected = "a line of more than 512 KB" if where == "after_header" else "its header does not end"
    _refused_in_child("firms", path, path.name, expected)


def _ingest_fires(store, path: Path):
    """Call the fire-file service with its actor wherever its signature puts it."""
    if "actor" in list(inspect.signature(services.ingest_fire_file).parameters)[1:2]:
        return services.ingest_fire_file(store, services.SYSTEM, path)
    return services.ingest_fire_file(store, path)


def test_a_garbage_fire_file_through_the_service_stores_nothing(store, tmp_path):
    path = _garbage_firms(tmp_path / "garbage_small.csv", 2)  # 20 000 lines of garbage: refused, not listed
    _refused(store, lambda: _ingest_fires(store, path), "garbage_small.csv", "cannot be used")


# -- upload names --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", "/", "a\x00b.geojson", "x" * 300 + ".geojson"],
                         ids=["dotdot", "slash", "nul", "long"])
def test_an_upload_named_as_a_path_is_refused_without_a_traceback(store, name):
    data = _feature_collection().encode()
    _refused(store, lambda: services.layer_load(store, services.SYSTEM, "no_burn_zones", data, name=name),
             "is not a file name")
    with pytest.raises(ValidationError, match="is not a file name"):
        services.layer_file_layers(data, name=name)
