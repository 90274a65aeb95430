"""The rules in force, each with its value and its source (a plan's clause, or a local setting with its document)."""

from __future__ import annotations

from typing import Any

from gridwatch import regionstore
from gridwatch.policy import rules_in_force
from gridwatch.services._common import Actor, policy, require
from gridwatch.storage import Store


def rules(store: Store, actor: Actor) -> list[dict[str, Any]]:
    """Every rule gridwatch applies to this database: ``key, label, value, source, document, off``.

    ``source`` is ``plan`` (the number is a plan's, ``document`` the clause), ``local`` (本地设置: ``document`` the
    document number the county entered, empty when none) or ``demo`` (a setting of the generated demo data). Anyone
    who may see cells may read the rules applied to them.
    """
    require(store, actor, "cell.view")
    return [r.to_dict() for r in rules_in_force(policy(store), demo=regionstore.is_demo(store))]
