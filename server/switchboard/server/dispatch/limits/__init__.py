"""Connector limits shared by every worker and replica: rate, slots, breaker, daily quota.

`base.Limits` is the contract; `local` keeps them in one process (as before), `store` in the
store's database, `redis` in Redis (with `degrade` falling back to local limits while Redis
is away). `build.build_limits` picks one from the settings.
"""
