// UI strings: Vietnamese first, English second.
'use strict';
var CAUHOP_STRINGS = {
  vi: {
    title: 'Cầu họp trực tuyến', meeting: 'Mã cuộc họp', name: 'Họ tên', site: 'Điểm cầu',
    camera: 'Camera', mic: 'Micrô', none: 'Không dùng', join: 'Vào họp', leave: 'Rời họp',
    mute: 'Tắt micrô', unmute: 'Bật micrô', camOff: 'Tắt camera', camOn: 'Bật camera',
    share: 'Chia sẻ màn hình', stopShare: 'Dừng chia sẻ', connecting: 'Đang kết nối…',
    reconnecting: 'Mất kết nối, đang kết nối lại…', joined: 'Đã vào họp', left: 'Đã rời cuộc họp',
    ended: 'Cuộc họp đã kết thúc', you: 'Bạn', noMedia: 'Không mở được camera/micrô: ',
    needName: 'Vui lòng nhập họ tên và mã cuộc họp', lang: 'English'
  },
  en: {
    title: 'Online meeting bridge', meeting: 'Meeting id', name: 'Your name', site: 'Site',
    camera: 'Camera', mic: 'Microphone', none: 'None', join: 'Join', leave: 'Leave',
    mute: 'Mute', unmute: 'Unmute', camOff: 'Stop camera', camOn: 'Start camera',
    share: 'Share screen', stopShare: 'Stop sharing', connecting: 'Connecting…',
    reconnecting: 'Connection lost, reconnecting…', joined: 'In the meeting', left: 'You left the meeting',
    ended: 'The meeting has ended', you: 'You', noMedia: 'Cannot open camera/microphone: ',
    needName: 'Please enter your name and the meeting id', lang: 'Tiếng Việt'
  }
};
