from smpdfu.server import SMPServer
from smpdfu.server_os import OSGroup
from smpdfu.server_image import ImageGroup
from smpdfu import cbor
from smpdfu.header import pack_header

class Mem:
    page_size = 4096
    def __init__(self):
        self.b = [bytearray(b"\xff" * 0x10000), bytearray(b"\xff" * 0x10000)]
    def slot_size(self, s): return 0x10000
    def read(self, s, off, buf): buf[:] = self.b[s][off:off + len(buf)]
    def write(self, s, off, d): self.b[s][off:off + len(d)] = d
    def erase(self, s, off, n): self.b[s][off:off + n] = b"\xff" * n

st = Mem()
srv = SMPServer()
srv.register(OSGroup(lambda: "1.0.0"))
srv.register(ImageGroup(st))
def req(op, g, c, body):
    p = bytearray(512); e = cbor.Encoder(p, 8); e.value(body)
    pack_header(p, 0, op, e.pos - 8, g, 1, c)
    return cbor.loads(srv.process(bytes(p[:e.pos]))[0][8:])
print(req(0, 0, 0, {"d": "hi"}))
print(req(0, 0, 7, {"format": "a"}))
print(req(0, 1, 0, {}))
print(req(2, 1, 1, {"off": 0, "len": 64, "data": b"\x3d\xb8\xf3\x96" + bytes(60)}))
print(req(2, 1, 1, {"off": 0, "data": bytes(64), "len": 64}))
