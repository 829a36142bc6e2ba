from services.core.runtime.migration_env import run
from services.intake.adapters.tables import metadata

run(metadata)
