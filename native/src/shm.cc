// virtq_shm: maps a file descriptor (a vhost-user frontend's memfd) with MAP_SHARED and wraps the
// mapping as a SharedArrayBuffer, so virtq's GuestMemory can sit directly on the frontend's
// memory. N-API cannot create a SharedArrayBuffer over external memory, so this file uses the V8
// API and must be rebuilt for each Node major version.
//   mmapShared(fd, lengthBytes, offsetBytes) -> SharedArrayBuffer   (throws Error with errno)
//   releaseShared(sab) -> 1 released now, 0 already released, -errno (-EINVAL: not ours)
// Releasing: a SharedArrayBuffer cannot be detached, so a stale view into it may outlive the
// connection (any worker may still hold one). releaseShared therefore never leaves a hole: it
// maps fresh anonymous private pages over the range in one mmap(MAP_FIXED) (atomic: no other
// thread's mmap can take the address in between), which drops the file mapping — the frontend's
// shared memory is freed as soon as it closes its memfd — while a stale read sees zeros and a
// stale write lands in a private page, never a SIGSEGV or another mapping's memory. The
// placeholder costs address space only (MAP_NORESERVE, nothing touched) and is unmapped with the
// backing store when the last SharedArrayBuffer over it is collected.
#include <node.h>
#include <v8.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <mutex>
#include <set>

namespace {

// Addresses returned by mmapShared whose file mapping is still in place. Guarded: the deleter
// runs on whichever thread collects the last SharedArrayBuffer.
std::mutex live_mutex;
std::set<void*> live;
// Addresses released by releaseShared whose placeholder waits for the backing store's deleter.
std::set<void*> released;

void Unmap(void* data, size_t length, void* /*deleter_data*/) {
  if (data == nullptr || length == 0) return;
  {
    std::lock_guard<std::mutex> g(live_mutex);
    live.erase(data);
    released.erase(data);
  }
  // The file mapping or, after releaseShared, its placeholder: either way this range is ours.
  munmap(data, length);
}

void ReleaseShared(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (info.Length() < 1 || !info[0]->IsSharedArrayBuffer()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "releaseShared(sab) expects a SharedArrayBuffer")));
    return;
  }
  std::shared_ptr<v8::BackingStore> store = info[0].As<v8::SharedArrayBuffer>()->GetBackingStore();
  void* data = store->Data();
  size_t len = store->ByteLength();
  std::lock_guard<std::mutex> g(live_mutex);
  if (live.find(data) == live.end()) {
    // Released before (0), or never a mapping of mmapShared (-EINVAL: not ours to replace).
    info.GetReturnValue().Set(v8::Integer::New(isolate, released.count(data) > 0 ? 0 : -EINVAL));
    return;
  }
  void* p = mmap(data, len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    info.GetReturnValue().Set(v8::Integer::New(isolate, -errno));
    return;
  }
  live.erase(data);
  released.insert(data);
  info.GetReturnValue().Set(v8::Integer::New(isolate, 1));
}

void MmapShared(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  auto ctx = isolate->GetCurrentContext();
  if (info.Length() < 3 || !info[0]->IsNumber() || !info[1]->IsNumber() || !info[2]->IsNumber()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "mmapShared(fd, lengthBytes, offsetBytes) expects three numbers")));
    return;
  }
  int fd = info[0]->Int32Value(ctx).FromMaybe(-1);
  double len = info[1]->NumberValue(ctx).FromMaybe(0);
  double off = info[2]->NumberValue(ctx).FromMaybe(-1);
  if (fd < 0 || !(len > 0) || off < 0 || len > 0x7fffffffffff || off > 0x7fffffffffff) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "mmapShared: bad fd, length or offset")));
    return;
  }
  void* p = mmap(nullptr, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
  if (p == MAP_FAILED) {
    char msg[128];
    snprintf(msg, sizeof msg, "mmapShared: mmap failed: %s (errno %d)", strerror(errno), errno);
    isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8(isolate, msg).ToLocalChecked()));
    return;
  }
  {
    std::lock_guard<std::mutex> g(live_mutex);
    live.insert(p);
  }
  std::shared_ptr<v8::BackingStore> store =
      v8::SharedArrayBuffer::NewBackingStore(p, (size_t)len, Unmap, nullptr);
  info.GetReturnValue().Set(v8::SharedArrayBuffer::New(isolate, std::move(store)));
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  v8::Isolate* isolate = context->GetIsolate();
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "mmapShared"),
               v8::FunctionTemplate::New(isolate, MmapShared)->GetFunction(context).ToLocalChecked())
      .Check();
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "releaseShared"),
               v8::FunctionTemplate::New(isolate, ReleaseShared)->GetFunction(context).ToLocalChecked())
      .Check();
}
