from services.core.runtime.migration_env import run
from services.notifier.adapters.tables import metadata

run(metadata)
