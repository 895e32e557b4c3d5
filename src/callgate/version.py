"""callgate's version: a leaf module, so that any module may name it without importing the
package (whose __init__ imports the engine)."""

__version__ = "0.1.0"
