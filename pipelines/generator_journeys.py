"""Product journeys: extra visitors whose visits exercise the funnel features.

Each visit follows one to three products at once (their events interleaved, so one session holds
parallel attempts for several product_ids), every event carrying its product_id: a view, the
reviews sometimes (an optional step, now and then read only after adding to the cart, out of
order), an add to cart, sometimes a removal (with a reason: `changed_mind` is an exclusion of
checkout_per_product), and an order. Visitors come back on later days, so a user's first order
is followed by repeats that a first-time step must ignore.

The journeys draw from their own random stream, so the main traffic's events stay the same
for a seed whatever this module does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pipelines.generated_event import Event

# `b` is pipelines.generator._Builder, typed Any: the generator imports this module
_CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks", "coats")
_SKUS = [f"sku-{i:03d}" for i in range(12)]


def product_journeys(b: Any, start: datetime, days: int, visitors: int) -> list[Event]:
    """The journeys of `visitors` new visitors over `days` days from `start` (events made with
    the builder `b`, whose random stream is theirs alone)."""
    rng = b.rng
    horizon = start + timedelta(days=days)
    for i in range(visitors):
        v = b.visitor(i, [None])
        at = start + timedelta(seconds=rng.randint(0, 86_400 * days - 1))
        while at < horizon:
            at = _visit(b, v, at)
            at += timedelta(seconds=rng.randint(2 * 3600, 30 * 3600))
    return b.events


def _visit(b: Any, v: Any, at: datetime) -> datetime:
    """One visit following 1-3 products in parallel; returns when it ended."""
    rng = b.rng
    planned: list[tuple[datetime, str, dict[str, Any]]] = []
    for sku in rng.sample(_SKUS, k=rng.choice([1, 1, 2, 3])):
        t = at + timedelta(seconds=rng.randint(1, 120))
        i = _SKUS.index(sku)
        product = {"product_id": sku, "price": 5 + i * 4.5, "category": _CATEGORIES[i % 6]}
        steps = ["Product Viewed"]
        if rng.random() < 0.5:
            steps.append("Product Reviews Viewed")
        if rng.random() < 0.75:
            steps.append("Product Added")
            if rng.random() < 0.15:
                steps.append("Product Reviews Viewed")  # after adding: not the optional step
            if rng.random() < 0.3:
                steps.append("Product Removed")
            if rng.random() < 0.6:
                steps.append("Order Completed")
        for name in steps:
            props = dict(product)
            if name == "Product Removed":
                props["reason"] = rng.choice(["changed_mind", "out_of_stock"])
            if name == "Order Completed":
                props.update(order_id=b.uid()[:8], revenue=product["price"], currency="USD")
            planned.append((t, name, props))
            t += timedelta(seconds=rng.randint(10, 600))
    planned.sort(key=lambda p: p[0])
    # a page view on the web, a screen view in the app (an app has no page path)
    kind = "page" if v.platform == "web" else "screen"
    b.emit(v, kind, at, False, name="Shop", path="/shop", landing=b.landing())
    for t, name, props in planned:
        path = f"/products/{props['product_id']}"
        b.emit(v, "track", t, False, event=name, path=path, props=props)
    return planned[-1][0]
