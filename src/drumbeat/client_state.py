"""What each part of the `Drumbeat` client (client.py) works on: one workspace of one store,
its settings and its clock, and the workspace's campaigns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drumbeat.campaign_api import Campaigns
    from drumbeat.config import Settings
    from drumbeat.store import Store

Clock = Callable[[], float]


class ClientState:
    """Set by `Drumbeat.__init__` (or `Drumbeat.attached`); the parts only read them."""

    config: Settings
    store: Store
    clock: Clock  # epoch seconds: the store's virtual clock if one is set, else real time
    ws: int  # the workspace's id

    if TYPE_CHECKING:  # `Drumbeat.campaigns`: the parts check a campaign's key with it

        @property
        def campaigns(self) -> Campaigns: ...
