"""The served OpenAPI document (GET /openapi.json); docs/api.md describes the same contract."""

from __future__ import annotations

from typing import Any

from . import __version__

WINDOW = {
    "type": "array",
    "minItems": 100,
    "maxItems": 100,
    "items": {"type": "array", "minItems": 9, "maxItems": 9, "items": {"type": "number"}},
    "description": "100 timesteps x 9 channels (ax, ay, az, gx, gy, gz, mx, my, mz unless channel_order says otherwise)",
}
EMBEDDING = {"type": "array", "items": {"type": "number"}, "minItems": 64, "maxItems": 64}
ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "description": "the offending field, e.g. imu_window[3][7]"},
        "expected": {"type": "string"},
        "got": {"type": "string"},
        "detail": {"type": "string"},
    },
}
COMMON_OUT = {
    "model_version": {"type": "string"},
    "backend": {"type": "string", "enum": ["onnxruntime", "hailo"]},
    "inference_ms": {"type": "number", "description": "backend time of the batch this request ran in"},
    "embedding_stamp": {"type": "string", "description": "<model_id>/<latent_dim>/<normalization hash[:12]>"},
}

# ?per_window=true on the shadow's report and its drop (sidecar/shadow_api.py).
PER_WINDOW = {
    "name": "per_window",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "true adds per_window: each paired window's kNN Jaccard (and cosine, same network only), "
    "oldest first, binned to at most 500 points",
}


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "malformed body (not JSON, wrong binary length)",
        "408": "the body did not arrive whole (the client left, or EDGEINFER_BODY_TIMEOUT_S passed)",
        "413": "body or batch over the limit",
        "415": "unsupported content type",
        "422": "wrong shape, missing field, non-numeric value, non-finite value or one beyond ±1e9",
        "500": "internal_error, or non_finite_output: the model answered NaN or Infinity for this input",
        "503": "no model has passed its self-check",
    }
    return {c: {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "EdgeInfer sidecar", "version": __version__},
    "paths": {
        "/encode": {
            "post": {
                "summary": "Embed one window or a batch of windows",
                "parameters": [
                    {
                        "name": "normalized",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "binary bodies only: the windows are already z-score normalized",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "imu_window": WINDOW,
                                    "imu_windows": {"type": "array", "items": WINDOW, "minItems": 1, "maxItems": 64},
                                    "normalized": {"type": "boolean", "default": False},
                                    "channel_order": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "minItems": 9,
                                        "maxItems": 9,
                                    },
                                },
                                "oneOf": [{"required": ["imu_window"]}, {"required": ["imu_windows"]}],
                            }
                        },
                        "application/octet-stream": {
                            "schema": {
                                "type": "string",
                                "format": "binary",
                                "description": "little-endian float32, 3600 bytes per 100x9 window, k windows for a batch",
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "embeddings computed by the model on the named backend",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "latent_embedding": EMBEDDING,
                                        "latent_embeddings": {"type": "array", "items": EMBEDDING},
                                        "count": {"type": "integer"},
                                        **COMMON_OUT,
                                    },
                                }
                            },
                            "application/octet-stream": {
                                "schema": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "with Accept: application/octet-stream: float32 LE [k][64]",
                                }
                            },
                        },
                    },
                    **_errors("400", "408", "413", "415", "422", "500", "503"),
                },
            }
        },
        "/infer": {
            "post": {
                "summary": "EdgeInfer client contract",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["x"],
                                "properties": {"x": WINDOW, "normalized": {"type": "boolean", "default": False}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "motif_scores appears only when the release's manifest lists motif_prototypes.json",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["latent"],
                                    "properties": {
                                        "latent": EMBEDDING,
                                        "motif_scores": {"type": "array", "items": {"type": "number"}},
                                        **COMMON_OUT,
                                    },
                                }
                            }
                        },
                    },
                    **_errors("400", "408", "413", "415", "422", "500", "503"),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "200 only while a self-checked model serves",
                "responses": {
                    "200": {
                        "description": "model_version, model_sha256, backend, backend_reason and "
                        "backend_reason_code (why that backend serves), hailo_fallback and hailo_status (the "
                        "HailoRT failure that moved serving to the CPU), build_quality, normalization_hash, "
                        "embedding_stamp, serving (current, or last_good when the current release was refused "
                        "at start), fallback_reason, uptime_s, last_reload"
                    },
                    "503": {"description": "status, reason, uptime_s, last_reload"},
                },
            }
        },
        "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "metrics"}}}},
        "/admin/reload": {
            "post": {
                "summary": "Load the release EDGEINFER_MODEL_DIR points to, self-check it, swap atomically",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "swapped; the new model serves"},
                    "401": {"description": "no bearer token"},
                    "403": {"description": "wrong token, or the admin API is disabled"},
                    "409": {"description": "a reload is already running"},
                    "422": {
                        "description": "the release failed to load or self-check; the old model (or, when none "
                        "served, the last good release) still serves"
                    },
                },
            }
        },
        "/admin/shadow": {
            "post": {
                "summary": "Load a staged release as the shadow beside the serving model (self-checked); "
                "a share of /encode and /infer windows is mirrored to it",
                "security": [{"bearer": []}],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["release"],
                                "additionalProperties": False,
                                "properties": {
                                    "release": {
                                        "type": "string",
                                        "description": "a release directory under EDGEINFER_SHADOW_ROOT, "
                                        "e.g. releases/<name>",
                                    },
                                    "onnx_file": {
                                        "enum": ["auto", "model.onnx", "model_batch.onnx", "model_int8.onnx"]
                                    },
                                    "backend": {"enum": ["onnxruntime", "auto", "hailo"], "default": "onnxruntime"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "the shadow runs; replaced names the shadow it replaced"},
                    "400": {"description": "the body is not JSON"},
                    "401": {"description": "no bearer token"},
                    "403": {"description": "wrong token, or the admin API is disabled"},
                    "409": {"description": "another shadow load is running"},
                    "422": {
                        "description": "a field is wrong (field, expected), or the release failed to load or "
                        "self-check (shadow_refused); the serving model is untouched"
                    },
                },
            },
            "delete": {
                "summary": "Drop the shadow; the answer holds its final report",
                "security": [{"bearer": []}],
                "parameters": [PER_WINDOW],
                "responses": {"200": {"description": "final_report"}, "404": {"description": "no shadow"}},
            },
        },
        "/admin/shadow/report": {
            "get": {
                "summary": "The A/B report: linear CKA, kNN Jaccard, motif agreement, cosine (same network "
                "only), inference times, drops, windows and whether they are enough (conclusive)",
                "security": [{"bearer": []}],
                "parameters": [PER_WINDOW],
                "responses": {"200": {"description": "the report"}, "404": {"description": "no shadow"}},
            }
        },
        "/admin/capture": {
            "get": {
                "summary": "The sampled windows of live /encode and /infer traffic (EDGEINFER_CAPTURE_WINDOWS): "
                "raw units, little-endian float32, 3600 bytes a window, the layout POST /encode takes; "
                "x-capture-windows, x-capture-seen and x-channel-order say what it holds",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "the windows (an empty body before the first window)",
                        "content": {"application/octet-stream": {}},
                    },
                    "401": {"description": "no bearer token"},
                    "403": {"description": "wrong token, or the admin API is disabled"},
                    "404": {"description": "capture is off (capture_off): EDGEINFER_CAPTURE_WINDOWS is 0"},
                },
            },
            "delete": {
                "summary": "Empty the capture and start a new sample",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "dropped_windows"}, "404": {"description": "capture is off"}},
            },
        },
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
}
