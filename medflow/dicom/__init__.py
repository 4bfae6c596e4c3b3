"""DICOM without a web framework: parsing headers (pixels deferred), rendering, generating."""
