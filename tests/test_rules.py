"""The rules in force: each with its value and its source, a plan's clause or a local setting with its document."""

from __future__ import annotations

import json

import pytest

from gridwatch import services
from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.policy import PLAN_RULES, Policy, rules_in_force


def _by_key(rules):
    return {r.key: r for r in rules}


def test_a_plans_number_cites_its_clause():
    rules = _by_key(rules_in_force(Policy.from_settings(Settings.load(env={}, config_path=None))))
    for key, _, value, clause in PLAN_RULES:
        assert rules[key].source == "plan" and rules[key].value == value and rules[key].document == clause
    assert "XC-2024" in rules["heat_small_boiler_tph"].document and "及以下" in rules["heat_small_boiler_tph"].document


def test_a_changed_plan_number_becomes_a_local_setting_with_its_document():
    settings = Settings.load(env={}, config_path=None, heat_radius_km=25,
                             rule_documents={"heat_radius_km": "伊政〔2025〕3号"})
    rule = _by_key(rules_in_force(Policy.from_settings(settings)))["heat_radius_km"]
    assert (rule.value, rule.source, rule.document) == ("25", "local", "伊政〔2025〕3号")


def test_numbers_no_plan_gives_are_local_and_say_so():
    rules = _by_key(rules_in_force(Policy.from_settings(Settings.load(env={}, config_path=None))))
    for key in ("key_periods", "sla_fire_check", "report_thresholds", "report_deduction_yuan"):
        assert rules[key].source == "local" and rules[key].document == ""
    demo = _by_key(rules_in_force(Policy(), demo=True))
    assert demo["report_thresholds"].source == "demo"


def test_documents_from_the_environment():
    settings = Settings.load(env={"GRIDWATCH_RULE_DOCUMENTS": "report_thresholds=伊政〔2024〕9号"}, config_path=None)
    assert _by_key(rules_in_force(Policy.from_settings(settings)))["report_thresholds"].document == "伊政〔2024〕9号"


def test_service_level_hours_come_from_the_settings():
    policy = Policy.from_settings(Settings.load(env={}, config_path=None,
                                                sla_hours={"fire_check": 12, "boiler_check": 48}))
    assert policy.sla_hours("fire_check") == 12 and policy.sla_hours("boiler_check") == 48
    assert policy.dispatch.sla_key_hours == 2  # unchanged where not set
    with pytest.raises(ValidationError, match="sla_hours"):
        Policy.from_settings(Settings.load(env={}, config_path=None, sla_hours={"fire_chek": 1}))
    with pytest.raises(ValidationError, match="sla_hours"):
        Policy.from_settings(Settings.load(env={}, config_path=None, sla_hours={"fire_check": -1}))


def test_rules_service_and_command(demo_store, tmp_path):
    rules = services.rules(demo_store, services.CLI)
    assert {r["source"] for r in rules} >= {"plan", "demo"}
    inspector = services.current_user(demo_store, services.sign_in(demo_store, "inspector", "demo-2026").token)
    assert services.rules(demo_store, inspector) == rules
    with pytest.raises(TypeError):
        services.rules(demo_store, None)


def test_rules_command_prints_json(tmp_path, capsys):
    from gridwatch.cli import main

    db = str(tmp_path / "r.duckdb")
    assert main(["init", "--region", "410329", "--db", db, "--json"]) == 0
    capsys.readouterr()
    assert main(["rules", "--db", db, "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert any(r["key"] == "heat_radius_km" and r["source"] == "plan" for r in rules)


def test_the_chains_rules_escalation_order_step_hours_roles_and_conflicts():
    rules = _by_key(rules_in_force(Policy.from_settings(Settings.load(env={}, config_path=None))))
    order = rules["escalation_order"]
    assert order.source == "plan" and order.document.startswith("HN-2017 §11")
    assert "行政村、社区主要负责人" in order.document
    assert order.value.index("村网格长") < order.value.index("乡镇主要负责人") < order.value.index("县") < \
        order.value.index("市网格长")
    assert rules["sla_step_hours"].off and rules["sla_step_hours"].source == "local"  # no invented hours
    assert rules["required_roles"].value.startswith("默认") and not rules["required_roles"].off
    assert rules["conflicting_roles"].value == "warn"
    settings = Settings.load(env={"GRIDWATCH_SLA_STEP_HOURS": "village=24,city=72",
                                  "GRIDWATCH_REQUIRED_ROLES": "village=grid_leader+supervisor,cell=inspector"},
                             config_path=None, rule_documents={"sla_step_hours": "伊政〔2025〕7号"})
    policy = Policy.from_settings(settings)
    assert policy.step_hours == {"village": 24.0, "city": 72.0}
    assert policy.escalation_hours("fire_check", "city") == 72 and policy.escalation_hours("fire_check", "county") \
        == policy.sla_hours("fire_check")
    rules = _by_key(rules_in_force(policy))
    step_hours = rules["sla_step_hours"]
    assert (step_hours.value, step_hours.document) == ("village=24,city=72", "伊政〔2025〕7号")
    assert rules["required_roles"].value == "village=grid_leader+supervisor,cell=inspector"


def test_the_demo_database_shows_step_hours_as_a_demo_setting(demo_store):
    from gridwatch.services._common import policy

    assert policy(demo_store).step_hours == {"village": 24.0, "township": 24.0, "county": 48.0, "city": 72.0}
    rule = next(r for r in services.rules(demo_store, services.CLI) if r["key"] == "sla_step_hours")
    assert (rule["source"], rule["value"], rule["off"]) == ("demo", "village=24,township=24,county=48,city=72", False)


def test_each_rule_says_since_when_it_is_in_force():
    """A plan's rule since its plan's date; a local one since the date the county entered with its document."""
    settings = Settings.load(env={"GRIDWATCH_REPORT_THRESHOLDS": "notice=5",
                                  "GRIDWATCH_RULE_DOCUMENTS": "report_thresholds=伊政〔2026〕3号",
                                  "GRIDWATCH_RULE_SINCE": "report_thresholds=2026-03-01"}, config_path=None)
    rules = _by_key(rules_in_force(Policy.from_settings(settings)))
    assert rules["heat_radius_km"].since == "2024-03-23"  # HN-2024, 豫政〔2024〕12号
    assert rules["heat_small_boiler_tph"].since == "2024-07-30"  # XC-2024 is cited first (its inclusive reading)
    assert rules["patrol_cadence"].since == "2017"
    local = rules["report_thresholds"]
    assert (local.source, local.document, local.since) == ("local", "伊政〔2026〕3号", "2026-03-01")
    assert rules["report_deduction_yuan"].since == ""  # nobody entered a date
    assert local.to_dict()["since"] == "2026-03-01"


@pytest.mark.parametrize("since, message", [("report_thresholds=2099-01-01", "after today"),
                                            ("report_thresholds=soon", "is not a date")])
def test_a_local_rule_dated_in_the_future_or_not_a_date_is_refused(since, message):
    settings = Settings.load(env={"GRIDWATCH_RULE_SINCE": since}, config_path=None)
    with pytest.raises(ValidationError, match=message):
        Policy.from_settings(settings)
