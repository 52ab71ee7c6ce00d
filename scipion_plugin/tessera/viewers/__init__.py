from .viewer import TesseraViewer
from .viewer_localres import TesseraLocalResolutionViewer

__all__ = ['TesseraViewer', 'TesseraLocalResolutionViewer']
