"""Writers: model objects → conformant DICOM-RT files (for exports, sample data and tests)."""
