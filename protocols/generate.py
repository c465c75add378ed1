"""Seeded, deterministic random scenarios for drills, tests and benchmarks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

from schemas.scenario import Scenario, parse_scenario

CRITICALITIES = ("hospital", "critical_infrastructure", "normal")
SECTORS = {"hospital": "hospital", "critical_infrastructure": "utility", "normal": "manufacturing"}
CAPABILITIES = ("cnc-milling", "sterilisation", "injection-moulding")
QUALIFICATIONS = ("iso13485", "iso9001", "gmp")


def generate_scenario_data(
    partners: int,
    materials: int,
    seed: int = 0,
    *,
    donor_fraction: float = 0.5,
    need_fraction: float = 0.35,
    capacity: bool = True,
    purchasing: bool = True,
    as_of: date = date(2026, 11, 23),
) -> dict[str, Any]:
    """Plain data of a random scenario (validate with :func:`parse_scenario`)."""
    rng = np.random.default_rng(seed)
    crit = rng.choice(3, size=partners, p=[0.1, 0.2, 0.7])
    lat = rng.uniform(47.5, 54.5, size=partners)
    lon = rng.uniform(6.0, 15.0, size=partners)
    partner_list = [
        {
            "id": f"p{i:04d}",
            "name": f"Partner {i}",
            "sector": SECTORS[CRITICALITIES[crit[i]]],
            "region": "DE",
            "criticality": CRITICALITIES[crit[i]],
            "sites": [
                {
                    "id": "main",
                    "name": "Main site",
                    "latitude": round(float(lat[i]), 5),
                    "longitude": round(float(lon[i]), 5),
                }
            ],
        }
        for i in range(partners)
    ]
    material_list = [
        {
            "id": f"M{m:04d}",
            "name": f"Material {m}",
            "unit": "pcs",
            "pack_size": 10.0,
            "min_shipment": 20.0,
        }
        for m in range(materials)
    ]
    role = rng.random(size=(partners, materials))
    amount = rng.integers(10, 201, size=(partners, materials)).astype(float)
    positions, needs = [], []
    for i in range(partners):
        for m in range(materials):
            safety = 50.0
            if role[i, m] < donor_fraction:
                on_hand = safety + amount[i, m]
            elif role[i, m] < donor_fraction + need_fraction:
                on_hand = float(rng.integers(0, 50))
                needs.append(
                    {
                        "need_id": f"n-{i:04d}-{m:04d}",
                        "partner_id": f"p{i:04d}",
                        "site_id": "main",
                        "material_id": f"M{m:04d}",
                        "quantity": float(amount[i, m]),
                        "needed_by": (as_of + timedelta(days=int(rng.integers(1, 10)))).isoformat(),
                    }
                )
            else:
                on_hand = safety
            positions.append(
                {
                    "partner_id": f"p{i:04d}",
                    "site_id": "main",
                    "material_id": f"M{m:04d}",
                    "on_hand": float(on_hand),
                    "safety_stock": safety,
                    "daily_consumption": 5.0,
                }
            )
    shares = rng.uniform(0.3, 1.0, size=partners)
    data: dict[str, Any] = {
        "name": f"generated {partners}x{materials} seed {seed}",
        "description": "Random scenario from protocols.generate (deterministic for its seed).",
        "as_of": as_of.isoformat(),
        "partners": partner_list,
        "materials": material_list,
        "positions": positions,
        "needs": needs,
        "agreements": {
            "surplus_sharing": [
                {"partner_id": f"p{i:04d}", "share": round(float(shares[i]), 3)}
                for i in range(partners)
            ],
            "capacity_lending": [],
            "purchasing_pools": [],
        },
    }
    if capacity:
        offers, cneeds = [], []
        for i in range(partners):
            cap = CAPABILITIES[int(rng.integers(0, len(CAPABILITIES)))]
            quals = sorted({QUALIFICATIONS[int(q)] for q in rng.integers(0, 3, size=2)})
            if rng.random() < 0.4:
                offers.append(
                    {
                        "offer_id": f"o-{i:04d}",
                        "partner_id": f"p{i:04d}",
                        "site_id": "main",
                        "capability": cap,
                        "qualifications": quals,
                        "hours": float(rng.integers(8, 81)),
                    }
                )
                data["agreements"]["capacity_lending"].append({"partner_id": f"p{i:04d}"})
            elif rng.random() < 0.4:
                req = [QUALIFICATIONS[int(rng.integers(0, 3))]] if rng.random() < 0.5 else []
                cneeds.append(
                    {
                        "need_id": f"c-{i:04d}",
                        "partner_id": f"p{i:04d}",
                        "site_id": "main",
                        "capability": cap,
                        "required_qualifications": req,
                        "hours": float(rng.integers(8, 61)),
                        "needed_by": (as_of + timedelta(days=7)).isoformat(),
                    }
                )
        data["capacity_offers"], data["capacity_needs"] = offers, cneeds
    if purchasing:
        pooled = [f"M{m:04d}" for m in range(min(3, materials))]
        suppliers, demands = [], []
        for material in pooled:
            for s in range(2):
                base = float(rng.uniform(5, 20))
                suppliers.append(
                    {
                        "supplier_id": f"s{s}-{material.lower()}",
                        "material_id": material,
                        "tiers": [
                            {"min_quantity": 0.0, "unit_price": round(base, 2)},
                            {"min_quantity": 500.0, "unit_price": round(base * 0.9, 2)},
                            {"min_quantity": 2000.0, "unit_price": round(base * 0.8, 2)},
                        ],
                    }
                )
        for i in range(partners):
            if rng.random() < 0.5 and pooled:  # no pool without a material to pool
                data["agreements"]["purchasing_pools"].append(
                    {"partner_id": f"p{i:04d}", "materials": pooled}
                )
                for material in pooled:
                    demands.append(
                        {
                            "partner_id": f"p{i:04d}",
                            "material_id": material,
                            "quantity": float(rng.integers(20, 400)),
                        }
                    )
        data["purchasing"] = {"suppliers": suppliers, "demands": demands}
    return data


def generate_scenario(partners: int, materials: int, seed: int = 0, **kwargs: Any) -> Scenario:
    return parse_scenario(
        generate_scenario_data(partners, materials, seed, **kwargs),
        f"<generated {partners}x{materials}>",
    )
