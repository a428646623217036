"""Test double of ``hailo_sdk_client.model_translator``."""
