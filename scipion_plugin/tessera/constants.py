"""Names shared by the Tessera plugin's modules."""
import os

TESSERA_HOME = 'TESSERA_HOME'
# Where Plugin.defineBinaries takes the sources from: a source folder, or a git URL to clone
# (scipion.conf or the environment may set it). Default: the checkout this plugin is installed
# from (pip install -e scipion_plugin), when it is one.
TESSERA_SOURCE = 'TESSERA_SOURCE'
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA_SOURCE_DEFAULT = _CHECKOUT if os.path.isfile(os.path.join(_CHECKOUT, 'CMakeLists.txt')) else ''
V0_1_0 = '0.1.0'

# Layouts of TESSERA_HOME: an install prefix (cmake --install) or a build tree.
BIN_DIRS = ('bin', 'protocols', 'viewers')
SCHEMA_DIR = ('share', 'tessera', 'schemas')
# The schemas the plugin ships (scripts/ship_plugin_schemas.sh copies them from a build): its protocol
# classes exist even where Tessera is not installed, so a saved project always loads its runs.
SHIPPED_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'schemas')

PARAMS_FILE = 'params.json'  # in the run folder; the program's --params
# The input a program processes (refinement, subtraction): its items are updated with the results.
PARTICLES_INPUT = 'particles'
TESSERA_CITATION = 'Tessera'
