"""The demo shop's catalogue: categories, fictional brands, prices, tags, stock.

Popularity follows a power law (Zipf over a random ranking), so a few products draw
most of the traffic, as in real shops. Pure: numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Category:
    """One department: its typical price (CNY), spread, share of the catalogue and words."""

    name: str
    median_price: float
    price_sigma: float
    share: float
    consumable: bool
    brands: tuple[str, ...]
    nouns: tuple[str, ...]
    tags: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("apparel", 199, 0.45, 0.16, False, ("Northwind", "Linea", "Qingshan", "Harbor & Co"),
             ("Linen Shirt", "Hoodie", "Denim Jacket", "Chinos", "Wrap Dress", "Merino Sweater",
              "Down Jacket", "Polo Shirt", "Cotton Tee"), ("cotton", "linen", "casual", "office")),
    Category("shoes", 399, 0.40, 0.08, False, ("Stride", "Yunbu", "Fieldstone"),
             ("Running Shoes", "Canvas Sneakers", "Loafers", "Chelsea Boots", "Sandals",
              "House Slippers"), ("running", "leather", "breathable", "waterproof")),
    Category("bags", 299, 0.45, 0.06, False, ("Carryall", "Lumi", "Harbor & Co"),
             ("Backpack", "Tote Bag", "Crossbody Bag", "Wallet", "Weekender", "Laptop Sleeve"),
             ("travel", "leather", "commute")),
    Category("beauty", 159, 0.45, 0.08, True, ("Peony Lab", "Lumi", "Mistral"),
             ("Lipstick", "Cushion Foundation", "Eye Palette", "Mascara", "Eau de Parfum"),
             ("vegan", "long-lasting", "gift")),
    Category("skincare", 189, 0.50, 0.10, True, ("Peony Lab", "Aqua Terra", "Xuelian"),
             ("Vitamin C Serum", "Night Cream", "Gentle Cleanser", "SPF50 Sunscreen",
              "Sheet Mask Set", "Hydrating Toner"), ("sensitive-skin", "hydrating", "spf")),
    Category("home", 149, 0.55, 0.10, False, ("Nestwell", "Qingshan", "Oakridge"),
             ("Throw Blanket", "Memory Pillow", "Bedsheet Set", "Soy Candle", "Storage Box",
              "Woven Rug"), ("cosy", "bedroom", "eco")),
    Category("kitchen", 129, 0.55, 0.08, False, ("Oakridge", "Panda Chef", "Nestwell"),
             ("Chef Knife", "Pour-Over Kettle", "Non-Stick Pan", "Bento Box", "Tea Set",
              "Rice Cooker"), ("cooking", "tea", "dishwasher-safe")),
    Category("electronics", 699, 0.60, 0.09, False, ("Voltix", "Beacon", "Xinghe"),
             ("Wireless Earbuds", "Power Bank", "Smart Watch", "Bluetooth Speaker",
              "Mechanical Keyboard", "GaN Charger"), ("wireless", "fast-charge", "gadget")),
    Category("sports", 229, 0.50, 0.07, False, ("Stride", "Summit", "Fieldstone"),
             ("Yoga Mat", "Dumbbell Set", "Jump Rope", "Cycling Gloves", "Insulated Bottle"),
             ("fitness", "outdoor", "yoga")),
    Category("books", 59, 0.35, 0.06, False, ("Inkstone Press", "Bamboo Books"),
             ("Novel", "Cookbook", "Travel Guide", "Picture Book", "Dot-Grid Journal"),
             ("reading", "gift", "kids")),
    Category("snacks", 45, 0.40, 0.08, True, ("Panda Pantry", "Yunnan Hills", "Mistral"),
             ("Dried Mango", "Mixed Nuts", "Longjing Green Tea", "Oolong Tea", "Dark Chocolate",
              "Coffee Beans"), ("organic", "tea", "snack")),
    Category("toys", 139, 0.50, 0.04, False, ("Tumble", "Bamboo Books", "Summit"),
             ("Building Blocks", "Plush Bunny", "Jigsaw Puzzle", "RC Car", "Wooden Train"),
             ("kids", "gift", "educational")),
)

ADJECTIVES = ("Classic", "Everyday", "Pro", "Lite", "Cloud", "Urban", "Pure", "Essential",
              "Heritage", "Studio", "Daily", "Signature")
COLOURS = ("Black", "Ivory", "Navy", "Sage", "Rust", "Grey", "Sand", "Plum")
ZIPF_EXPONENT = 1.1
OUT_OF_STOCK_SHARE = 0.07


@dataclass(frozen=True)
class Catalogue:
    """The products frame (CSV contract) plus arrays the simulation samples from.

    ``category`` holds indices into :data:`CATEGORIES`, ``price_cents`` integer prices,
    ``popularity`` positive weights (heavy-tailed), all aligned with ``products`` rows.
    """

    products: pd.DataFrame
    category: np.ndarray
    price_cents: np.ndarray
    popularity: np.ndarray


def _shop_price(raw: np.ndarray) -> np.ndarray:
    """Prices as shops set them: 39.90, 129.00, 1299.00 (in cents)."""
    cheap = np.maximum(np.round(raw) * 100 - 10, 990)
    dear = (np.round(raw / 10) * 10 - 1) * 100
    return np.where(raw < 100, cheap, np.maximum(dear, 9900)).astype(np.int64)


def build_catalogue(n_products: int, rng: np.random.Generator) -> Catalogue:
    """A catalogue of ``n_products`` products.

    Frame columns (DESIGN.md ``products.csv``): product_id (``P00001``...), name, category,
    brand, price (decimal string, e.g. "129.00"), tags (``|``-separated), in_stock (bool),
    url.
    """
    shares = np.array([c.share for c in CATEGORIES])
    category = np.sort(rng.choice(len(CATEGORIES), size=n_products, p=shares / shares.sum()))
    medians = np.array([c.median_price for c in CATEGORIES])[category]
    sigmas = np.array([c.price_sigma for c in CATEGORIES])[category]
    price_cents = _shop_price(medians * np.exp(rng.normal(0.0, sigmas)))
    ranks = rng.permutation(n_products) + 1
    popularity = 1.0 / ranks.astype(float) ** ZIPF_EXPONENT

    names: list[str] = []
    brands: list[str] = []
    tags: list[str] = []
    seen: dict[str, int] = {}
    adjective_pick = rng.integers(0, len(ADJECTIVES), n_products)
    colour_pick = rng.integers(0, len(COLOURS), n_products)
    noun_pick = rng.random(n_products)
    brand_pick = rng.random(n_products)
    tag_pick = rng.random((n_products, 3))
    for i, c in enumerate(category):
        cat = CATEGORIES[c]
        brand = cat.brands[int(brand_pick[i] * len(cat.brands))]
        noun = cat.nouns[int(noun_pick[i] * len(cat.nouns))]
        name = f"{brand} {ADJECTIVES[adjective_pick[i]]} {noun}"
        if cat.name in ("apparel", "shoes", "bags"):
            name += f", {COLOURS[colour_pick[i]]}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name += f" {seen[name]}"
        own = [cat.tags[int(t * len(cat.tags))] for t in tag_pick[i, : 1 + i % 2]]
        if ranks[i] <= n_products // 20:
            own.append("bestseller")
        if tag_pick[i, 2] < 0.1:
            own.append("new")
        names.append(name)
        brands.append(brand)
        tags.append("|".join(dict.fromkeys(own)))

    product_ids = [f"P{i + 1:05d}" for i in range(n_products)]
    products = pd.DataFrame(
        {
            "product_id": product_ids,
            "name": names,
            "category": [CATEGORIES[c].name for c in category],
            "brand": brands,
            "price": [f"{p // 100}.{p % 100:02d}" for p in price_cents],
            "tags": tags,
            "in_stock": rng.random(n_products) >= OUT_OF_STOCK_SHARE,
            "url": [f"https://shop.example.com/p/{pid.lower()}" for pid in product_ids],
        }
    )
    return Catalogue(products, category, price_cents, popularity)
