"""Tapline: a self-hosted live video-support server."""
