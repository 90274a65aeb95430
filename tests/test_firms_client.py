"""The FIRMS client against a local stand-in server: URLs, statuses, retries, redaction, windows, scheduler."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest
from firms_standin import EMPTY_CSV, GOOD_CSV, FirmsStandIn, serve

from gridwatch.errors import GridwatchError, ValidationError
from gridwatch.firms import (
    MAX_DAY_RANGE,
    SOURCES,
    STATUSES,
    FetchError,
    FetchResult,
    FetchScheduler,
    FirmsClient,
    day_windows,
    region_bbox,
)

HENAN = (110.25, 31.28, 116.75, 36.47)
#: a realistic MAP_KEY tail (32 hex digits) appended to a behaviour name to check redaction
SECRET = "5f1e0c2b9a7d4e3f8b6a1c0d2e4f6a8b"
KEYS = ("good", "empty", "badkey", "denied", "limited", "limited400", "html", "flaky", "html200", "slow", "echo")


@pytest.fixture
def standin() -> FirmsStandIn:
    """A fresh stand-in server (flaky key: two 503 answers, then the CSV)."""
    with serve(flaky_failures=2, slow_s=2.0) as server:
        yield server


@pytest.fixture
def base_url(standin: FirmsStandIn) -> str:
    """The stand-in's URL, checked to be local so no test can reach the internet."""
    url = standin.base_url
    assert urlsplit(url).hostname == "127.0.0.1", url
    return url


def client_for(base_url: str, key: str, **options) -> FirmsClient:
    """A client of the stand-in with short timeouts and no proxy (proxy variables must not divert it)."""
    assert urlsplit(base_url).hostname == "127.0.0.1", base_url
    settings = {"timeout_s": 0.3, "retries": 2, "backoff_s": 0.01,
                "opener": urllib.request.build_opener(urllib.request.ProxyHandler({}))}
    settings.update(options)
    return FirmsClient(key, base_url=base_url, **settings)


# -- the URL ---------------------------------------------------------------------------------------


def test_the_url_has_west_south_east_north_the_day_range_and_the_start_date(base_url, standin):
    client = client_for(base_url, "good")
    result = client.fetch_area("VIIRS_SNPP_NRT", HENAN, days=3, start=date(2022, 2, 26))
    assert standin.paths == ["/api/area/csv/good/VIIRS_SNPP_NRT/110.25,31.28,116.75,36.47/3/2022-02-26"]
    assert result.url_redacted == f"{base_url}/api/area/csv/***/VIIRS_SNPP_NRT/110.25,31.28,116.75,36.47/3/2022-02-26"
    assert (result.days, result.start, result.source) == (3, date(2022, 2, 26), "VIIRS_SNPP_NRT")


def test_without_a_start_the_url_ends_with_the_day_range(base_url, standin):
    client_for(base_url + "/", "good").fetch_area("MODIS_NRT", (-1.5, -0.0, 2, 3.1234567), days=1)
    assert standin.paths == ["/api/area/csv/good/MODIS_NRT/-1.5,0,2,3.123457/1"]


# -- statuses --------------------------------------------------------------------------------------


def test_a_csv_with_rows_is_ok(base_url, standin):
    result = client_for(base_url, "good").fetch_area("MODIS_NRT", HENAN, days=1)
    assert isinstance(result, FetchResult)
    assert (result.status, result.rows, result.http_status, result.attempts) == ("ok", 20, 200, 1)
    assert result.ok
    assert result.csv_bytes == GOOD_CSV.read_bytes()
    assert result.csv_bytes.startswith(b"latitude,longitude,")
    assert "20 fire point" in result.message
    assert result.started_at.tzinfo is UTC and result.finished_at >= result.started_at
    assert 0 <= result.elapsed_s < 5


def test_a_header_only_csv_is_empty_not_an_error(base_url):
    result = client_for(base_url, "empty").fetch_area("MODIS_NRT", HENAN, days=2)
    assert (result.status, result.rows, result.http_status) == ("empty", 0, 200)
    assert result.ok
    assert result.csv_bytes == EMPTY_CSV.read_bytes()


def test_invalid_map_key_is_bad_key_and_not_retried(base_url, standin):
    result = client_for(base_url, "badkey").fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("bad_key", 400, 1)
    assert "Invalid MAP_KEY." in result.message
    assert result.csv_bytes == b"" and not result.ok
    assert standin.hits("badkey") == 1


def test_401_is_bad_key(base_url, standin):
    result = client_for(base_url, "denied").fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status) == ("bad_key", 401)
    assert standin.hits("denied") == 1


def test_429_is_rate_limited_not_retried_and_says_when_to_try_again(base_url, standin):
    result = client_for(base_url, "limited").fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("rate_limited", 429, 1)
    assert "try again in 600 s" in result.message
    assert "Exceeding allowed transaction limit" in result.message
    assert standin.hits("limited") == 1


def test_the_transaction_limit_wording_is_rate_limited_whatever_the_status(base_url, standin):
    result = client_for(base_url, "limited400").fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status) == ("rate_limited", 400)
    assert "try again later" in result.message
    assert standin.hits("limited400") == 1


def test_an_html_503_is_retried_then_an_error_naming_the_page(base_url, standin):
    result = client_for(base_url, "html", retries=2).fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("error", 503, 3)
    assert "the service answered with an HTML page (503 Service Unavailable)" in result.message
    assert "after 3 attempts" in result.message
    assert standin.hits("html") == 3
    assert result.csv_bytes == b""


def test_a_flaky_service_succeeds_on_a_retry(base_url, standin):
    result = client_for(base_url, "flaky", retries=2).fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.rows, result.attempts) == ("ok", 20, 3)
    assert standin.hits("flaky") == 3


def test_without_retries_a_flaky_service_is_an_error(base_url, standin):
    result = client_for(base_url, "flaky", retries=0).fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.attempts) == ("error", 1)
    assert standin.hits("flaky") == 1


def test_an_html_page_with_200_is_an_error_without_retry(base_url, standin):
    result = client_for(base_url, "html200").fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("error", 200, 1)
    assert "HTML page (503 Service Unavailable)" in result.message


def test_an_html_429_is_still_rate_limited():
    from gridwatch.firms import _classify
    from gridwatch.webio import Answer as _Answer

    verdict = _classify(_Answer(429, b"<html><head><title>Too Many Requests</title></head></html>", "30"))
    assert (verdict.status, verdict.retry) == ("rate_limited", False)
    assert "HTML page (Too Many Requests)" in verdict.message and "try again in 30 s" in verdict.message


def test_a_slow_service_times_out(base_url, standin):
    began = time.monotonic()
    result = client_for(base_url, "slow", timeout_s=0.3, retries=1).fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("timeout", None, 2)
    assert time.monotonic() - began < 1.5  # the stand-in would take 2 s per request
    assert standin.hits("slow") == 2


def test_a_refused_connection_is_an_error_after_retries():
    with socket.socket() as sock:  # a local port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = client_for(f"http://127.0.0.1:{port}", "good", retries=1).fetch_area("MODIS_NRT", HENAN, days=1)
    assert (result.status, result.http_status, result.attempts) == ("error", None, 2)
    assert "could not reach the service" in result.message


def test_statuses_are_the_documented_ones():
    assert STATUSES == ("ok", "empty", "bad_key", "rate_limited", "error", "timeout")


# -- the key stays secret ---------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", KEYS)
def test_the_key_never_appears_in_the_url_message_or_log(base_url, standin, behaviour, caplog):
    caplog.set_level(logging.DEBUG, logger="gridwatch.firms")
    key = f"{behaviour}-{SECRET}"
    client = client_for(base_url, key, retries=1)
    result = client.fetch_area("MODIS_NRT", HENAN, days=2, start=date(2024, 5, 1))
    assert result.status in STATUSES
    assert key in standin.paths[0]  # the stand-in did get the key
    assert "/***/" in result.url_redacted
    for text in (result.url_redacted, result.message, caplog.text, repr(client), repr(result)):
        assert SECRET not in text


def test_the_key_never_appears_in_a_key_status_error(base_url, caplog):
    caplog.set_level(logging.DEBUG, logger="gridwatch.firms")
    with pytest.raises(FetchError) as caught:
        client_for(base_url, f"html-{SECRET}", retries=1).key_status()
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.params)
    assert SECRET not in caplog.text


def test_a_body_that_repeats_the_url_is_redacted(base_url):
    result = client_for(base_url, f"echo-{SECRET}").fetch_area("MODIS_NRT", HENAN, days=1)
    assert result.status == "error"
    assert "/api/area/csv/***/MODIS_NRT" in result.message
    assert SECRET not in result.message


# -- bad arguments -------------------------------------------------------------------------------


def test_an_unknown_source_is_refused_with_the_valid_ones(base_url, standin):
    with pytest.raises(ValidationError) as caught:
        client_for(base_url, "good").fetch_area("MODIS_C61", HENAN, days=1)
    assert all(source in str(caught.value) for source in SOURCES)
    assert caught.value.params["source"] == "MODIS_C61"
    assert standin.paths == []


@pytest.mark.parametrize("days", [0, MAX_DAY_RANGE + 1, 10, True, 2.0, "3"])
def test_a_day_range_outside_1_to_5_is_refused(base_url, standin, days):
    with pytest.raises(ValidationError, match="fetch_days"):
        client_for(base_url, "good").fetch_area("MODIS_NRT", HENAN, days=days)
    assert standin.paths == []


@pytest.mark.parametrize("bbox", [(116, 31, 110, 36), (110, 36, 116, 31), (110, 31, 190, 36), (1, 2, 3),
                                  (float("nan"), 0, 1, 1), "a,b,c,d"])
def test_a_bad_box_is_refused(base_url, bbox):
    with pytest.raises(ValidationError):
        client_for(base_url, "good").fetch_area("MODIS_NRT", bbox, days=1)


def test_a_start_that_is_not_a_date_is_refused(base_url):
    with pytest.raises(ValidationError):
        client_for(base_url, "good").fetch_area("MODIS_NRT", HENAN, days=1, start="2024-01-01")


@pytest.mark.parametrize("key", ["", "two words", "a/b", None])
def test_a_malformed_key_is_refused_without_showing_it(key):
    with pytest.raises(ValidationError) as caught:
        FirmsClient(key)
    if key:
        assert key not in str(caught.value)
    assert caught.value.params == {}


@pytest.mark.parametrize("options", [{"base_url": "ftp://example.org"}, {"timeout_s": 0}, {"retries": -1},
                                     {"backoff_s": -1}])
def test_bad_client_settings_are_refused(options):
    with pytest.raises(ValidationError):
        FirmsClient("abc123", **options)


# -- windows ------------------------------------------------------------------------------------


def test_day_windows_split_into_full_windows_oldest_first():
    assert day_windows(12, date(2024, 3, 12)) == [(date(2024, 3, 1), 5), (date(2024, 3, 6), 5),
                                                  (date(2024, 3, 11), 2)]
    assert day_windows(5, date(2024, 1, 3)) == [(date(2023, 12, 30), 5)]
    assert day_windows(1, date(2024, 1, 3)) == [(date(2024, 1, 3), 1)]
    with pytest.raises(ValidationError):
        day_windows(0, date(2024, 1, 3))


def test_fetch_days_asks_5_5_2_windows_with_their_start_dates(base_url, standin):
    results = client_for(base_url, "good").fetch_days("VIIRS_NOAA20_NRT", HENAN, 12, date(2024, 3, 12))
    area = "110.25,31.28,116.75,36.47"
    assert standin.paths == [
        f"/api/area/csv/good/VIIRS_NOAA20_NRT/{area}/5/2024-03-01",
        f"/api/area/csv/good/VIIRS_NOAA20_NRT/{area}/5/2024-03-06",
        f"/api/area/csv/good/VIIRS_NOAA20_NRT/{area}/2/2024-03-11",
    ]
    assert [(r.start, r.days, r.status) for r in results] == [
        (date(2024, 3, 1), 5, "ok"), (date(2024, 3, 6), 5, "ok"), (date(2024, 3, 11), 2, "ok")]


def test_fetch_days_stops_at_a_bad_key(base_url, standin):
    results = client_for(base_url, "badkey").fetch_days("MODIS_NRT", HENAN, 12, date(2024, 3, 12))
    assert [r.status for r in results] == ["bad_key"]
    assert standin.hits("badkey") == 1


def test_fetch_days_checks_the_arguments_before_asking(base_url, standin):
    with pytest.raises(ValidationError):
        client_for(base_url, "good").fetch_days("NOPE", HENAN, 12, date(2024, 3, 12))
    assert standin.paths == []


# -- key status ---------------------------------------------------------------------------------


def test_key_status_returns_the_services_json(base_url, standin):
    status = client_for(base_url, "good").key_status()
    assert status["transaction_limit"] == 5000 and status["current_transactions"] == 12
    assert standin.paths == ["/mapserver/mapkey_status/?MAP_KEY=good"]


def test_key_status_of_a_bad_key_raises_a_redacted_fetch_error(base_url):
    with pytest.raises(FetchError) as caught:
        client_for(base_url, "badkey").key_status()
    assert isinstance(caught.value, GridwatchError) and isinstance(caught.value, ConnectionError)
    assert caught.value.params["status"] == "bad_key"
    assert "badkey" not in str(caught.value)


# -- the bounding box helper --------------------------------------------------------------------


def test_region_bbox_widens_and_rounds_outward():
    assert region_bbox((110.3612, 31.3821, 116.6519, 36.3666)) == (110.261, 31.282, 116.752, 36.467)
    assert region_bbox((113.1, 34.0, 113.2, 34.1), margin_deg=0) == (113.1, 34.0, 113.2, 34.1)
    assert region_bbox((-179.95, -89.95, 179.95, 89.95)) == (-180.0, -90.0, 180.0, 90.0)
    with pytest.raises(ValidationError):
        region_bbox((110, 31, 116, 36), margin_deg=-1)


# -- the scheduler ------------------------------------------------------------------------------


def _wait_for(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_scheduler_runs_repeatedly_and_stops_promptly():
    calls: list[float] = []
    scheduler = FetchScheduler(lambda: calls.append(time.monotonic()) or len(calls), interval_s=0.05,
                               name="firms-test")
    assert not scheduler.is_running and scheduler.next_run is None
    scheduler.start()
    try:
        assert _wait_for(lambda: len(calls) >= 4)
        assert scheduler.is_running
        assert isinstance(scheduler.last_run, datetime) and scheduler.last_run.tzinfo is UTC
        assert scheduler.last_error is None and scheduler.last_result >= 1
        assert _wait_for(lambda: scheduler.next_run is not None)
    finally:
        began = time.monotonic()
        assert scheduler.stop()
    assert time.monotonic() - began < 0.5
    assert not scheduler.is_running and scheduler.next_run is None
    settled = len(calls)
    time.sleep(0.15)
    assert len(calls) == settled
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= 0.04


def test_the_scheduler_runs_at_once_on_start():
    ran = threading.Event()
    scheduler = FetchScheduler(ran.set, interval_s=60, name="firms-first")
    scheduler.start()
    try:
        assert ran.wait(1.0)
    finally:
        began = time.monotonic()
        scheduler.stop()
    assert time.monotonic() - began < 0.5  # the 60 s wait is cut short


def test_the_scheduler_survives_an_exception_and_records_it():
    calls = []

    def run_once():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the service went away")
        return "fine"

    scheduler = FetchScheduler(run_once, interval_s=0.05, name="firms-failing")
    scheduler.start()
    try:
        assert _wait_for(lambda: len(calls) >= 4)
        assert scheduler.is_running
        assert isinstance(scheduler.last_error, RuntimeError)
        assert str(scheduler.last_error) == "the service went away"
        assert scheduler.failures == 1 and scheduler.last_error_at is not None
        assert scheduler.last_result == "fine" and scheduler.last_ok >= scheduler.last_error_at
    finally:
        scheduler.stop()


def test_start_is_idempotent_and_restart_works():
    calls = []
    scheduler = FetchScheduler(lambda: calls.append(threading.current_thread()), interval_s=0.05,
                               name="firms-once")
    scheduler.start()
    scheduler.start()
    try:
        assert _wait_for(lambda: len(calls) >= 3)
        assert len(set(calls)) == 1
        assert sum(t.name == "firms-once" for t in threading.enumerate()) == 1
    finally:
        scheduler.stop()
    scheduler.start()
    try:
        assert _wait_for(lambda: len(set(calls)) == 2)
    finally:
        scheduler.stop()


def test_trigger_runs_before_the_interval_ends():
    calls = []
    scheduler = FetchScheduler(lambda: calls.append(1), interval_s=60, name="firms-trigger")
    scheduler.start()
    try:
        assert _wait_for(lambda: len(calls) == 1)
        scheduler.trigger()
        assert _wait_for(lambda: len(calls) == 2, timeout=1.0)
    finally:
        scheduler.stop()


@pytest.mark.parametrize("interval", [0, -1, float("inf")])
def test_the_scheduler_needs_a_positive_interval(interval):
    with pytest.raises(ValidationError):
        FetchScheduler(lambda: None, interval_s=interval, name="bad")
