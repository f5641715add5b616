"""Configuration of the inference service."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from catdog.model import CPU_PROVIDER, provider_name
from services.common import objectives
from services.common.settings import DEV_INFERENCE_ADMIN_TOKEN, ServiceSettings, require_secret

REPO_ROOT = Path(__file__).resolve().parents[2]


class RegistrySettings(ServiceSettings):
    """What the registry CLI needs: the database and the model store."""

    model_store_dir: Path = Field(
        default=REPO_ROOT / "models" / "store",
        description="Where registered model versions are kept, one folder each; a volume every "
        "inference replica mounts.",
    )


class Settings(RegistrySettings):
    """Every variable is documented in `.env.example`."""

    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="HTTP port (INFERENCE_PORT).",
        validation_alias="INFERENCE_PORT",
    )
    model_path: Path = Field(
        default=REPO_ROOT / "models" / "cat_dog_classifier.onnx",
        description="ONNX model (its JSON card beside it) that becomes the active version when "
        "the registry has none, and is served while PostgreSQL cannot be reached at start.",
    )
    inference_admin_token: str | None = Field(
        default=None,
        description="Bearer token of the model registry's admin routes; unset, they refuse all.",
    )
    model_upload_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description="Largest model + card accepted by POST /admin/models.",
    )
    model_registry_poll_s: float = Field(
        default=2.0, gt=0, description="How often each replica checks the registry for changes."
    )
    predict_max_photos: int = Field(
        default=16, ge=1, le=256, description="Photos one /predict or /infer request may carry."
    )
    shadow_queue_limit: int = Field(
        default=32,
        ge=1,
        description="Photos waiting for the shadow model; past it they are dropped, not awaited.",
    )
    canary_check_interval_s: float = Field(
        default=30.0, gt=0, description="How often the canary is compared with the active model."
    )
    rollback_alpha: float = Field(
        default=objectives.ROLLBACK_ALPHA,
        gt=0,
        lt=0.5,
        description="Significance level of the canary-is-less-accurate test.",
    )
    rollback_min_labelled: int = Field(
        default=30, ge=1, description="Labelled answers each model needs before they are compared."
    )
    rollback_latency_ratio: float = Field(
        default=objectives.ROLLBACK_LATENCY_RATIO,
        gt=1,
        description="Canary p95 latency allowed, as a multiple of the active's.",
    )
    rollback_min_requests: int = Field(
        default=100, ge=1, description="Answers each model needs before latencies are compared."
    )
    rollback_max_error_rate: float = Field(
        default=0.02, gt=0, lt=1, description="Share of failed canary model calls allowed."
    )
    drift_window: int = Field(
        default=200,
        ge=20,
        le=5000,
        description="Recent predictions per model version the drift and estimated-accuracy "
        "checks look at.",
    )
    drift_interval_s: float = Field(
        default=60.0, gt=0, description="How often each model version's window is checked."
    )
    drift_alpha: float = Field(
        default=objectives.DRIFT_ALPHA,
        gt=0,
        lt=0.5,
        description="Significance level of the embedding drift test (its false-alarm rate "
        "per check).",
    )
    drift_permutations: int = Field(
        default=500, ge=50, le=10_000, description="Permutations behind each drift p-value."
    )
    drift_sample_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of predictions whose embedding (the vector only, never the photo) "
        "is kept for the drift check; 0 turns the check off.",
    )
    drift_keep_windows: int = Field(
        default=5,
        ge=1,
        description="Embeddings kept per model version, in windows; older ones are deleted.",
    )
    labelled_window: int = Field(
        default=500,
        ge=10,
        description="Latest predictions with feedback per version behind the live calibration "
        "error and the feedback-based accuracy.",
    )
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Body limit.")
    max_image_pixels: int = Field(default=40_000_000, ge=1, description="Decompression-bomb cap.")
    decode_megapixels_per_client_per_minute: float = Field(
        default=600.0,
        gt=0,
        description="Megapixels one client's photos may make us decode per minute (JPEG at its "
        "reduced scale), in a burst or spread; past it, 429 with Retry-After.",
    )
    upload_idle_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="A client silent this long mid-upload is disconnected.",
    )
    upload_total_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest time a whole upload may take to arrive."
    )
    inference_threads: int = Field(
        default=2,
        ge=1,
        description="Threads decoding and scoring in parallel per worker.",
    )
    onnx_intra_op_threads: int = Field(default=1, ge=1, description="ONNX Runtime threads/run.")
    onnx_providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(CPU_PROVIDER,),
        description="ONNX Runtime execution providers in order of preference, comma-separated "
        "(cpu, cuda, tensorrt or ONNX Runtime's names); those missing on the node are skipped, "
        "CPU is always the fallback.",
    )
    pending_rows_limit: int = Field(
        default=50_000,
        ge=1,
        description="Predictions kept in memory while PostgreSQL is down.",
    )
    kept_photo_max_side: int = Field(
        default=1024,
        ge=64,
        le=4096,
        description="Longest side, in pixels, of a photo kept with photo_consent (re-encoded "
        "as JPEG without metadata).",
    )
    kept_photos_per_client_per_hour: int = Field(
        default=60,
        ge=1,
        description="Consented photos one client (peer address) may have kept per hour, in a "
        "burst or spread; past it predictions are answered and their photos not kept (counted).",
    )
    pending_max_age_s: float = Field(
        default=86_400.0,
        gt=0,
        # Below the 30 days feedback keeps erasure tombstones, which refuse a late write.
        le=7 * 86_400.0,
        description="Age past which a prediction not yet written is dropped (counted), "
        "never written late.",
    )
    pending_photo_bytes_limit: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Photo bytes kept in memory while it is down.",
    )
    dashboard_public_url: str = Field(
        default="http://localhost:8050/monitoring/",
        description="Where /monitoring redirects.",
    )
    feedback_public_url: str = Field(
        default="http://localhost:8001",
        description="The feedback service as browsers reach it; the upload page posts there.",
    )

    @field_validator("onnx_providers", mode="before")
    @classmethod
    def _provider_list(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        names = tuple(provider_name(str(item)) for item in items if str(item).strip())
        if not names:
            raise ValueError("name at least one execution provider, e.g. cpu")
        return names

    @field_validator("feedback_public_url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        # It is written into the page and the CSP header: anything but a plain URL is refused.
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://feedback.example.org")
        if any(char in value for char in " \t\n;,'\"<>"):
            raise ValueError("must be a plain URL without spaces, quotes or separators")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _permutations_can_reach_alpha(self) -> Settings:
        # The smallest permutation p-value is 1 / (permutations + 1).
        if self.drift_alpha * (self.drift_permutations + 1) <= 1:
            raise ValueError(
                f"DRIFT_PERMUTATIONS={self.drift_permutations} can never give a p-value under "
                f"DRIFT_ALPHA={self.drift_alpha}: use more than {1 / self.drift_alpha - 1:.0f}"
            )
        return self

    @model_validator(mode="after")
    def _admin_token_in_dev_mode(self) -> Settings:
        # Like the notifier's: `make run` gets a working admin API, production never does.
        if self.dev_mode and not self.inference_admin_token:
            self.inference_admin_token = DEV_INFERENCE_ADMIN_TOKEN
        elif self.inference_admin_token:
            require_secret(
                "INFERENCE_ADMIN_TOKEN", self.inference_admin_token, dev_mode=self.dev_mode
            )
        return self

    @property
    def feedback_origin(self) -> str:
        """Scheme, host and port of the feedback service, as CSP `connect-src` wants it."""
        parts = urlsplit(self.feedback_public_url)
        return f"{parts.scheme}://{parts.netloc}"


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
