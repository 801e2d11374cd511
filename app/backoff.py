"""How long to wait before trying again after a transient failure, in one place for every kind of job.

Delays grow to a cap and then repeat (the issue's target: once QuickBooks or HubSpot is back, everything
settles within two minutes), until the retries of one run have waited `give_up_after` seconds in all.
"""

from dataclasses import dataclass

from flask import current_app


@dataclass(frozen=True)
class Backoff:
    delays: tuple[float, ...]  # after the 1st, 2nd, ... failed try; the last one repeats
    give_up_after: float | None = None  # seconds of waiting in all; None: until the caller's own deadline

    def delay(self, failed_tries: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after `failed_tries` failures (1 = the first try failed); None when it is time
        to give up. A service's Retry-After is honoured when it asks for longer."""
        if failed_tries < 1:
            failed_tries = 1
        if self.give_up_after is not None and self.waited(failed_tries) > self.give_up_after:
            return None
        return max(self.step(failed_tries), retry_after or 0.0)

    def step(self, failed_tries: int) -> float:
        return self.delays[min(failed_tries, len(self.delays)) - 1]

    def waited(self, failed_tries: int) -> float:
        """The waiting the schedule adds up to once `failed_tries` tries have failed."""
        listed = sum(self.delays[: min(failed_tries, len(self.delays))])
        return listed + max(0, failed_tries - len(self.delays)) * self.delays[-1]


def parse_delays(value) -> tuple[float, ...]:
    delays = tuple(float(d) for d in (value.split(",") if isinstance(value, str) else value) if str(d).strip())
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"retry delays must be a comma-separated list of seconds, not {value!r}")
    return delays


def execution_backoff() -> Backoff:
    """Runs of an action: RETRY_DELAYS, for at most RETRY_FOR_SECONDS; then QUICKBOOKS_UNAVAILABLE."""
    config = current_app.config
    return Backoff(parse_delays(config["RETRY_DELAYS"]), float(config["RETRY_FOR_SECONDS"]))


def callback_backoff() -> Backoff:
    """Callback completions: CALLBACK_RETRY_DELAYS until the execution expires (checked by the caller)."""
    return Backoff(parse_delays(current_app.config["CALLBACK_RETRY_DELAYS"]))


def write_back_backoff() -> Backoff:
    """Writing a document onto its HubSpot record: slower, for a day; the workflow never waits on it."""
    config = current_app.config
    return Backoff(parse_delays(config["WRITE_BACK_RETRY_DELAYS"]), float(config["WRITE_BACK_RETRY_FOR_SECONDS"]))
