{
  "targets": [
    {
      "target_name": "virtq_io",
      "sources": ["src/io.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "virtq_shm",
      "sources": ["src/shm.cc"],
      "cflags_cc": ["-O2", "-Wall"]
    }
  ]
}
