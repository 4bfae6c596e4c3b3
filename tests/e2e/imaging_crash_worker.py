"""Run by test_imaging_crash.py in its own process: ingest one file with the configured
adapters, announcing on stdout when the object is stored and then stalling before the row,
so the test can SIGKILL it inside the crash window."""

import asyncio
import sys
from pathlib import Path

from medflow.bootstrap import build_services
from medflow.imaging.ingest import ingest_file


async def main(institution_id: str, path: str) -> None:
    services = build_services()
    real_put = services.objects.put

    async def put_then_stall(*args, **kwargs):
        info = await real_put(*args, **kwargs)
        print("OBJECT-STORED", flush=True)
        await asyncio.sleep(120)
        return info

    services.objects.put = put_then_stall
    await ingest_file(services, institution_id, Path(path), Path(path).stat().st_size)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
