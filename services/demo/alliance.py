"""A generated demo alliance: a few dozen partners across sectors and regions (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from schemas.agreements import (
    Agreements,
    CapacityLendingAgreement,
    PoolParticipation,
    SurplusSharingAgreement,
)
from schemas.alliance import Alliance, Partner, Site
from schemas.common import Criticality, Unit

REGIONS = {
    "DE-BY": (48.14, 11.58),
    "DE-BW": (48.78, 9.18),
    "DE-NW": (51.23, 6.78),
    "DE-HE": (50.11, 8.68),
    "DE-SN": (51.05, 13.74),
    "DE-NI": (52.37, 9.73),
}

SECTORS: list[tuple[str, Criticality, str]] = [
    ("hospital", Criticality.HOSPITAL, "Klinikum"),
    ("pharma", Criticality.CRITICAL_INFRASTRUCTURE, "Pharma"),
    ("utility", Criticality.CRITICAL_INFRASTRUCTURE, "Stadtwerke"),
    ("manufacturing", Criticality.NORMAL, "Werk"),
    ("logistics", Criticality.NORMAL, "Logistik"),
]


@dataclass(frozen=True)
class DemoMaterial:
    id: str
    unit: Unit
    sectors: tuple[str, ...]
    daily: float  # typical daily consumption of one site


MATERIALS = [
    DemoMaterial("NACL-500ML", Unit.PIECES, ("hospital", "pharma"), 120),
    DemoMaterial("FFP2-MASK", Unit.PIECES, ("hospital", "pharma", "logistics"), 400),
    DemoMaterial("NITRILE-GLOVE", Unit.PIECES, ("hospital", "pharma", "manufacturing"), 900),
    DemoMaterial("PROPOFOL-20ML", Unit.PIECES, ("hospital",), 35),
    DemoMaterial("ETHANOL-70", Unit.LITRE, ("hospital", "pharma", "manufacturing"), 60),
    DemoMaterial("CHLORINE", Unit.KILOGRAM, ("utility",), 250),
    DemoMaterial("DIESEL", Unit.LITRE, ("utility", "logistics", "hospital"), 800),
    DemoMaterial("STEEL-COIL", Unit.TONNE, ("manufacturing",), 4),
    DemoMaterial("MCU-32BIT", Unit.PIECES, ("manufacturing", "utility"), 150),
    DemoMaterial("PALLET-EU", Unit.PIECES, ("logistics", "manufacturing", "pharma"), 90),
]


# what hospitals and pharma buy together in the demo's purchasing pool
POOL_MATERIALS = ("FFP2-MASK", "NITRILE-GLOVE")
# capability each lending sector offers, with the qualification it holds
CAPABILITIES = {
    "pharma": ("sterilisation", "iso-13485"),
    "manufacturing": ("cnc-milling", "iso-9001"),
}


def demo_alliance(partners: int = 36, seed: int = 7) -> Alliance:
    rng = random.Random(seed)
    members = []
    regions = sorted(REGIONS)
    for index in range(partners):
        sector, criticality, prefix = SECTORS[index % len(SECTORS)]
        region = regions[(index // len(SECTORS)) % len(regions)]
        lat, lon = REGIONS[region]
        site_count = 2 if index % 4 == 0 else 1
        sites = [
            Site(
                id=f"site-{s + 1}",
                name=f"{prefix} {region} {index + 1} / {s + 1}",
                latitude=round(lat + rng.uniform(-0.6, 0.6), 4),
                longitude=round(lon + rng.uniform(-0.8, 0.8), 4),
            )
            for s in range(site_count)
        ]
        members.append(
            Partner(
                id=f"{sector}-{region.lower()}-{index + 1:02d}",
                name=f"{prefix} {region} {index + 1}",
                sector=sector,
                region=region,
                criticality=criticality,
                sites=sites,
            )
        )
    sharing = [
        SurplusSharingAgreement(partner_id=p.id, share=0.5 if p.sector == "hospital" else 0.7)
        for p in members
    ]
    lending = [
        CapacityLendingAgreement(partner_id=p.id)
        for p in members
        if p.sector in ("manufacturing", "pharma")
    ]
    pools = [
        PoolParticipation(partner_id=p.id, materials=list(POOL_MATERIALS))
        for p in members
        if p.sector in ("hospital", "pharma")
    ]
    return Alliance(
        name="Verbund Demo-Allianz",
        partners=members,
        agreements=Agreements(
            surplus_sharing=sharing, capacity_lending=lending, purchasing_pools=pools
        ),
    )


def materials_for(partner: Partner) -> list[DemoMaterial]:
    return [m for m in MATERIALS if partner.sector in m.sectors]
