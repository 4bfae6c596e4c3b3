"""Imaging: DICOM ingestion (HTTP, STOW-RS, hospital events, C-STORE), QIDO-style search,
authorised retrieval through signed URLs, rendering."""
