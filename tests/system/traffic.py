"""A steady mixed stream of predictions and feedback that counts every outcome."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.images import jpeg


@dataclass
class Outcomes:
    """What the clients saw, request by request."""

    predicted: list[str] = field(default_factory=list)
    feedback_stored: list[str] = field(default_factory=list)
    feedback_refused: list[tuple[int, str | None]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: list[tuple[float, str]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


class MixedTraffic(threading.Thread):
    """One client: a prediction, and after every `feedback_every`-th one, feedback on it."""

    def __init__(
        self,
        inference_url: str,
        feedback_url: str,
        *,
        feedback_every: int = 9,
        pause_s: float = 0.02,
    ) -> None:
        super().__init__(daemon=True)
        self.inference_url = inference_url
        self.feedback_url = feedback_url
        self.feedback_every = feedback_every
        self.pause_s = pause_s
        self.outcomes = Outcomes()
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[int, int, int]:
        """(predictions, feedback stored, feedback refused) so far."""
        with self._lock:
            seen = self.outcomes
            return len(seen.predicted), len(seen.feedback_stored), len(seen.feedback_refused)

    def run(self) -> None:
        photo = jpeg()
        count = 0
        with httpx.Client(timeout=15) as client:
            while not self._stopping.is_set():
                prediction_id = self._predict(client, photo)
                count += 1
                if prediction_id and count % self.feedback_every == 0:
                    self._feedback(client, prediction_id)
                time.sleep(self.pause_s)

    def _predict(self, client: httpx.Client, photo: bytes) -> str | None:
        try:
            response = client.post(
                f"{self.inference_url}/predict", files={"file": ("p.jpg", photo, "image/jpeg")}
            )
        except httpx.TransportError as error:
            with self._lock:
                self.outcomes.transport_errors.append((time.monotonic(), repr(error)))
            return None
        with self._lock:
            self.outcomes.statuses[f"predict {response.status_code}"] += 1
            if response.status_code != 200:
                self.outcomes.unexpected.append(f"predict {response.status_code} {response.text}")
                return None
            prediction_id: str = response.json()["prediction_id"]
            self.outcomes.predicted.append(prediction_id)
        return prediction_id

    def _feedback(self, client: httpx.Client, prediction_id: str) -> None:
        body = {"prediction_id": prediction_id, "satisfaction": "satisfied", "rgpd_consent": True}
        try:
            response = client.post(f"{self.feedback_url}/feedback", json=body)
        except httpx.TransportError as error:
            with self._lock:
                self.outcomes.transport_errors.append((time.monotonic(), repr(error)))
            return
        with self._lock:
            self.outcomes.statuses[f"feedback {response.status_code}"] += 1
            if response.status_code == 201:
                self.outcomes.feedback_stored.append(prediction_id)
            elif response.status_code == 503:
                self.outcomes.feedback_refused.append(
                    (response.status_code, response.headers.get("retry-after"))
                )
            else:
                self.outcomes.unexpected.append(f"feedback {response.status_code} {response.text}")

    def stop(self) -> Outcomes:
        """Stop after the request in flight; the outcomes."""
        self._stopping.set()
        self.join(timeout=60)
        return self.outcomes
