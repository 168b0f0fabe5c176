"""Tests of ratline.api: schemas, loading, validation, host names and analysis."""
