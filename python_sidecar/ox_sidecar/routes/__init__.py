"""The API by area, one APIRouter each (as full-stack-fastapi-template's
`api/routes/`): `ops` the probes and the scraper, `auth` signing in and the
account (`/v1/auth/*`, `/v1/users/me*`), `game` sessions, predictions,
settlements, stats and the leaderboard, `points`, `rewards`, `ads`, and
`admin` everything under `/admin/*` plus the metrics reports."""

from __future__ import annotations

from fastapi import APIRouter

from . import admin, ads, auth, game, ops, points, rewards

ROUTERS: list[APIRouter] = [
    ops.router,
    auth.router,
    game.router,
    points.router,
    rewards.router,
    ads.router,
    admin.router,
]
