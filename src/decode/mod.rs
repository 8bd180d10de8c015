//! Decode: raw binlog event bodies → typed values. (Being written.)
