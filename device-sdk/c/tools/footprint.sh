#!/usr/bin/env bash
# Cortex-M4 footprint of the C SDK (codec + WebSocket client + device client; no TLS, no transport, not the
# caller's buffers), as `make size` prints it:
#   1. each SDK object built with arm-none-eabi-gcc -Os -mcpu=cortex-m4 -mthumb (arm-none-eabi-size);
#   2. a firmware image using the device API (tools/size_main.c), linked with --gc-sections against newlib-nano,
#      minus the same image without the SDK: what the SDK adds to a firmware, C library helpers included;
#   3. the context struct (td_device) and what the SDK keeps in static RAM (its objects' .data + .bss).
# Usage: footprint.sh BUILD_DIR [FLASH_CEILING] ; exits 1 when the SDK has static RAM over 1 KB or the linked
# flash exceeds FLASH_CEILING (a regression guard; the 8 KB goal is reported, see docs/sdk-c.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?build dir}/arm
ceiling=${2:-0}
mkdir -p "$out"
CC=${ARM_CC:-arm-none-eabi-gcc}
SIZE=${ARM_SIZE:-arm-none-eabi-size}
FLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -Os -mcpu=cortex-m4 -mthumb -ffunction-sections -fdata-sections -I"$here/include")
LINK=(--specs=nano.specs --specs=nosys.specs -Wl,--gc-sections)
for f in tendril_codec tendril_ws tendril_device; do "$CC" "${FLAGS[@]}" -c "$here/src/$f.c" -o "$out/$f.o"; done
"$CC" "${FLAGS[@]}" -c "$here/tools/size_main.c" -o "$out/base.o"
"$CC" "${FLAGS[@]}" -DTD_SIZE_WITH_SDK -c "$here/tools/size_main.c" -o "$out/main.o"
"$CC" "${FLAGS[@]}" "${LINK[@]}" -Wl,-Map="$out/sdk.map" "$out/main.o" "$out"/tendril_{codec,ws,device}.o -o "$out/sdk.elf"
printf '#include "tendril_device.h"\nchar td_device_bytes[sizeof(td_device)];\nchar td_ws_bytes[sizeof(td_ws)];\n' >"$out/ctx.c"
"$CC" "${FLAGS[@]}" -fcommon -c "$out/ctx.c" -o "$out/ctx.o"
ctx=$(arm-none-eabi-nm -S "$out/ctx.o" | awk '$4=="td_device_bytes"{print strtonum("0x"$2)}' 2>/dev/null || true)
if [ -z "$ctx" ]; then ctx=$(arm-none-eabi-nm -S "$out/ctx.o" | awk '$4=="td_device_bytes"{print $2}' | xargs -I{} printf '%d' 0x{}); fi
wsctx=$(arm-none-eabi-nm -S "$out/ctx.o" | awk '$4=="td_ws_bytes"{print $2}' | xargs -I{} printf '%d' 0x{})

echo "== SDK objects (arm-none-eabi-gcc -Os -mcpu=cortex-m4 -mthumb; every function, before the linker drops unused ones)"
"$SIZE" -t "$out"/tendril_{codec,ws,device}.o
sdk_ram=$("$SIZE" -t "$out"/tendril_{codec,ws,device}.o | awk 'END{print $2+$3}')
# What the linker kept, per object, from the map files (node: CI has it; mawk has no strtonum).
"$CC" "${FLAGS[@]}" "${LINK[@]}" -Wl,-Map="$out/base.map" "$out/base.o" -o "$out/base.elf"
kept=$(node "$here/tools/map-sizes.mjs" "$out/sdk.map")
base_kept=$(node "$here/tools/map-sizes.mjs" "$out/base.map")
read -r own libc < <(node -e '
  const sdk = JSON.parse(process.argv[1]), base = JSON.parse(process.argv[2]);
  let own = 0, libc = 0;
  for (const [o, v] of Object.entries(sdk)) {
    if (/^tendril_(codec|ws|device)\.o$/.test(o)) own += v.flash;
    else if (/^lib(c|g|gcc|c_nano)/.test(o) && !(o in base)) libc += v.flash;
  }
  console.log(own, libc);' "$kept" "$base_kept")
per_object=$(node -e 'const k = JSON.parse(process.argv[1]); for (const o of ["tendril_codec.o", "tendril_ws.o", "tendril_device.o"]) console.log(`  ${o}: ${k[o]?.flash ?? 0} bytes`)' "$kept")
echo
echo "== a firmware image that uses the device API (tools/size_main.c, --gc-sections, newlib-nano)"
"$SIZE" "$out/base.elf" "$out/sdk.elf"
read -r base_text base_data base_bss _ < <("$SIZE" "$out/base.elf" | awk 'NR==2{print $1, $2, $3, $4}')
read -r sdk_text sdk_data sdk_bss _ < <("$SIZE" "$out/sdk.elf" | awk 'NR==2{print $1, $2, $3, $4}')
flash=$((sdk_text + sdk_data - base_text - base_data))
echo
echo "SDK code the linker kept in the image (text + rodata), by object:"
echo "$per_object"
echo "SDK flash: $own bytes; C library functions it pulls in (memcpy, memmove, strlen, memcmp; memset is in every image): $libc bytes"
echo "image growth with the SDK (its code, the C library helpers, and the calls in main): $flash bytes"
# The same image with link-time optimisation (not one of the issue's flags; a firmware may use it).
"$CC" "${FLAGS[@]}" -flto "${LINK[@]}" -DTD_SIZE_WITH_SDK "$here/tools/size_main.c" "$here"/src/tendril_{codec,ws,device}.c -o "$out/sdk-lto.elf"
"$CC" "${FLAGS[@]}" -flto "${LINK[@]}" "$here/tools/size_main.c" -o "$out/base-lto.elf"
lto=$(( $("$SIZE" "$out/sdk-lto.elf" | awk 'NR==2{print $1 + $2}') - $("$SIZE" "$out/base-lto.elf" | awk 'NR==2{print $1 + $2}') ))
echo "image growth with the SDK, the same built with -flto: $lto bytes"
# The minimal configuration (docs/sdk-c.md, "Build options"): the same image, the SDK built with its macros.
MIN_DEFS=(${MIN_DEFS:--DTD_WITH_BATCH=0 -DTD_WITH_RESULT_BUFFER=0})
mkdir -p "$out/min"
for f in tendril_codec tendril_ws tendril_device; do "$CC" "${FLAGS[@]}" "${MIN_DEFS[@]}" -c "$here/src/$f.c" -o "$out/min/$f.o"; done
"$CC" "${FLAGS[@]}" "${MIN_DEFS[@]}" -DTD_SIZE_WITH_SDK -c "$here/tools/size_main.c" -o "$out/min/main.o"
"$CC" "${FLAGS[@]}" "${LINK[@]}" -Wl,-Map="$out/min/sdk.map" "$out/min/main.o" "$out"/min/tendril_{codec,ws,device}.o -o "$out/min/sdk.elf"
min_own=$(node -e 'const k = JSON.parse(process.argv[1]); let t = 0; for (const o of ["tendril_codec.o", "tendril_ws.o", "tendril_device.o"]) t += k[o]?.flash ?? 0; console.log(t)' "$(node "$here/tools/map-sizes.mjs" "$out/min/sdk.map")")
echo "SDK flash in the minimal configuration (${MIN_DEFS[*]}): $min_own bytes"
echo "static RAM of the SDK itself (.data + .bss of its objects): $sdk_ram bytes"
echo "context struct td_device: $ctx bytes (of which td_ws $wsctx), in the caller's memory, like the store, rx and tx buffers"
status=0
if [ "$sdk_ram" -gt 1024 ]; then echo "FAIL: static RAM $sdk_ram > 1024"; status=1; fi
if [ "$ceiling" -gt 0 ] && [ "$own" -gt "$ceiling" ]; then echo "FAIL: SDK flash $own > ceiling $ceiling"; status=1; fi
goal=8192
for cfg in "default:$own" "minimal:$min_own"; do
  n=${cfg#*:}
  if [ "$n" -le "$goal" ]; then echo "goal (${cfg%%:*} build): SDK flash <= $goal bytes: met"; else echo "goal (${cfg%%:*} build): SDK flash <= $goal bytes: NOT met (over by $((n - goal)))"; fi
done
exit $status
