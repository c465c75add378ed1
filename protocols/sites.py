"""Site coordinates and the lane cost table, indexed once per scenario."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from protocols.geo import EARTH_RADIUS_KM
from schemas.scenario import Scenario


class SiteTable:
    """Every partner site by ``(partner_id, site_id)``: index, latitude, longitude.

    Looking sites up here instead of ``Scenario.site`` (a scan of the partner's sites
    per call) and indexing the lane cost table once keeps model building linear.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.index: dict[tuple[str, str], int] = {}
        lat: list[float] = []
        lon: list[float] = []
        for partner in scenario.partners:
            for site in partner.sites:
                self.index[partner.id, site.id] = len(lat)
                lat.append(site.latitude)
                lon.append(site.longitude)
        self.latitude = np.array(lat, dtype=np.float64)
        self.longitude = np.array(lon, dtype=np.float64)
        # haversine terms per site, computed once (same operations as haversine_matrix)
        self._lat_rad = np.radians(self.latitude)
        self._lon_rad = np.radians(self.longitude)
        self._cos_lat = np.cos(self._lat_rad)
        # (from site, to site) -> cost per unit; the last entry for a lane wins.
        self.lane_cost: dict[tuple[int, int], float] = {
            (
                self.index[lc.from_partner, lc.from_site],
                self.index[lc.to_partner, lc.to_site],
            ): lc.cost_per_unit
            for lc in scenario.lane_costs
        }

    def of(self, keys: Sequence[tuple[str, str]]) -> npt.NDArray[np.int64]:
        """Site indices of ``(partner_id, site_id)`` pairs."""
        return np.fromiter((self.index[k] for k in keys), np.int64, len(keys))

    def distance(
        self, src: npt.NDArray[np.int64], snk: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Great-circle km between every source site (rows) and sink site (columns):
        :func:`protocols.geo.haversine_matrix` with the per-site terms precomputed
        (bit-identical results, tested)."""
        p1 = self._lat_rad[src][:, None]
        p2 = self._lat_rad[snk][None, :]
        dl = self._lon_rad[snk][None, :] - self._lon_rad[src][:, None]
        a = (
            np.sin((p2 - p1) / 2) ** 2
            + self._cos_lat[src][:, None] * self._cos_lat[snk][None, :] * np.sin(dl / 2) ** 2
        )
        result: npt.NDArray[np.float64] = (
            2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        )
        return result

    def pair_distance(
        self, src: npt.NDArray[np.int64], snk: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Great-circle km between ``src[k]`` and ``snk[k]`` for every k: the operations of
        :meth:`distance`, element by element (the same values, tested)."""
        p1 = self._lat_rad[src]
        p2 = self._lat_rad[snk]
        dl = self._lon_rad[snk] - self._lon_rad[src]
        a = (
            np.sin((p2 - p1) / 2) ** 2
            + self._cos_lat[src] * self._cos_lat[snk] * np.sin(dl / 2) ** 2
        )
        result: npt.NDArray[np.float64] = (
            2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        )
        return result

    def pair_distance_and_cost(
        self, src: npt.NDArray[np.int64], snk: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(distance km, unit cost) of the lanes ``src[k]`` -> ``snk[k]``; the lane table
        overrides the distance (as in :meth:`distance_and_cost`)."""
        dist = self.pair_distance(src, snk)
        cost = dist.copy()
        if self.lane_cost:
            n = len(self.latitude)
            keys = np.array([a * n + b for a, b in self.lane_cost], dtype=np.int64)
            values = np.array(list(self.lane_cost.values()), dtype=np.float64)
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
            lane = src * n + snk
            at = np.minimum(np.searchsorted(keys, lane), len(keys) - 1)
            listed = keys[at] == lane
            cost[listed] = values[at[listed]]
        return dist, cost

    def distance_and_cost(
        self, src: npt.NDArray[np.int64], snk: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(distance km, unit cost) for every source site x sink site; the lane table
        overrides the distance."""
        dist = self.distance(src, snk)
        cost = dist.copy()
        if self.lane_cost:
            rows: dict[int, list[int]] = {}
            cols: dict[int, list[int]] = {}
            for i, site in enumerate(src.tolist()):
                rows.setdefault(site, []).append(i)
            for j, site in enumerate(snk.tolist()):
                cols.setdefault(site, []).append(j)
            for (a, b), value in self.lane_cost.items():
                if a in rows and b in cols:
                    cost[np.ix_(rows[a], cols[b])] = value
        return dist, cost
