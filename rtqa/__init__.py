"""rtqa: radiotherapy plan quality assurance for SBRT plans exported as DICOM-RT."""

__version__ = "0.1.0"
