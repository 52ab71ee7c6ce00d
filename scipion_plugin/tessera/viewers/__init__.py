from .viewer import TesseraViewer

__all__ = ['TesseraViewer']
