package migrate

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const (
	opReply = 1
	opQuery = 2004
)

// wireVersion asks the server at addr (reached through d) for its wire
// version range with a legacy OP_QUERY isMaster, which every MongoDB
// release answers (it is the handshake drivers of all ages start with),
// so the answer comes even from servers the driver refuses.
func wireVersion(ctx context.Context, d Dialer, addr string) (min, max int32, err error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	query, _ := bson.Marshal(bson.D{{Key: "isMaster", Value: int32(1)}})
	var msg []byte
	msg = binary.LittleEndian.AppendUint32(msg, 0) // length, below
	msg = binary.LittleEndian.AppendUint32(msg, 1) // requestID
	msg = binary.LittleEndian.AppendUint32(msg, 0) // responseTo
	msg = binary.LittleEndian.AppendUint32(msg, opQuery)
	msg = binary.LittleEndian.AppendUint32(msg, 0) // flags
	msg = append(msg, "admin.$cmd\x00"...)
	msg = binary.LittleEndian.AppendUint32(msg, 0)          // numberToSkip
	msg = binary.LittleEndian.AppendUint32(msg, 0xffffffff) // numberToReturn -1
	msg = append(msg, query...)
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
	if _, err := c.Write(msg); err != nil {
		return 0, 0, fmt.Errorf("handshake: %w", err)
	}
	var hdr [16]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("handshake: %w", ctxErr(ctx, err))
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	op := binary.LittleEndian.Uint32(hdr[12:])
	if n < 16+20+5 || n > 48<<20 || op != opReply {
		return 0, 0, fmt.Errorf("handshake: unexpected reply (opcode %d, %d bytes): is this a MongoDB server?", op, n)
	}
	body := make([]byte, n-16)
	if _, err := io.ReadFull(c, body); err != nil {
		return 0, 0, fmt.Errorf("handshake: %w", ctxErr(ctx, err))
	}
	doc := bson.Raw(body[20:])
	if err := doc.Validate(); err != nil {
		return 0, 0, fmt.Errorf("handshake reply: %w", err)
	}
	num := func(k string) int32 {
		v, ok := doc.Lookup(k).AsInt64OK()
		if !ok {
			return 0
		}
		return int32(v)
	}
	return num("minWireVersion"), num("maxWireVersion"), nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
