"""The bundle's entry script.

PyInstaller runs its entry as a plain top-level script, not as a module of the package, so the
package's own ``__main__.py`` (whose import is relative) cannot be the entry: this one imports
the package absolutely and does what ``inpaint-studio`` does.
"""

import sys

from inpaint_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
