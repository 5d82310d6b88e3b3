"""``obproject.assets`` on flowpolicy: ``from flowpolicy.assets import Asset, promote_assets``.

The names flows use, with obproject's signatures. obproject's module-level HTTP helpers
(``register_asset``, ``get_data_asset``, ``list_model_assets``, …) are its client of the
Outerbounds service and have no counterpart: the ``Asset`` methods do the same against any
flowpolicy registry (README, "obproject compatibility").
"""

from flowpolicy.registry.base import EntityRef
from flowpolicy.runtime.assets import Asset, AssetInstance, DeleteResult
from flowpolicy.runtime.identity import entity_ref, task_ref, user_ref
from flowpolicy.runtime.promote import DEFAULT_PROMOTION_ALIASES, promote_assets

__all__ = ["DEFAULT_PROMOTION_ALIASES", "Asset", "AssetInstance", "DeleteResult", "EntityRef",
           "entity_ref", "promote_assets", "task_ref", "user_ref"]
