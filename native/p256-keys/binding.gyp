{
  "targets": [
    {
      "target_name": "p256_keys",
      "sources": ["src/p256_keys.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-deprecated-declarations"]
    }
  ]
}
