from services.core.runtime.migration_env import run
from services.tracker.adapters.tables import metadata

run(metadata)
